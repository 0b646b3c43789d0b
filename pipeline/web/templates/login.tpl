% rebase('base', title=title, nav=nav, csrf=csrf, flash=message, current='')
<form method="post" action="/login" class="login">
<input type="hidden" name="csrf" value="{{csrf}}">
<label>Password <input type="password" name="password" autocomplete="current-password" required autofocus></label>
<button>Log in</button>
</form>
<p>The password is set on the Pi with <code>frame-ingest web-password</code>.</p>
