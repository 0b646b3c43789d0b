% rebase('base', title=title, nav=nav, csrf=csrf, flash=flash, current=current)
% for entry in page.entries:
<article class="entry{{' failed' if entry['error'] else ''}}">
<div class="facts"><p class="name">{{entry['name']}}</p>
<dl>
% if entry['at']:
<dt>last run</dt><dd>{{entry['at']}}</dd>
<dt>result</dt><dd>{{('error: ' + entry['error']) if entry['error'] else ('%d new file(s)' % entry['staged'])}}</dd>
% end
</dl>
% if entry['advice']:
<p class="advice">{{entry['advice']}}</p>
% end
</div></article>
% end
