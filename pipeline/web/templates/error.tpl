% rebase('base', title=title, nav=nav, csrf='', flash='', current='')
<p class="flash">{{message}}</p>
<p><a href="/arrivals">Back to the arrivals</a></p>
