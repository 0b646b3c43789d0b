% if page.pages > 1:
<p class="pager">
% if page.number > 1:
<a href="/{{current}}?page={{page.number - 1}}">« newer</a>
% end
page {{page.number}} of {{page.pages}}
% if page.number < page.pages:
<a href="/{{current}}?page={{page.number + 1}}">older »</a>
% end
</p>
% end
