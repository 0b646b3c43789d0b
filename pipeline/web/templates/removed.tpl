% rebase('base', title=title, nav=nav, csrf=csrf, flash=flash, current=current)
<p>Photos taken off the frame. The same photo sent again goes to quarantine, not back on the frame. Undo puts one back where it was.</p>
% for entry in page.entries:
<article class="entry">
% if entry['on_disk']:
<img src="/preview/removed/{{entry['id']}}" alt="{{entry['path']}}" width="160">
% else:
<div class="gone">deleted</div>
% end
<div class="facts"><p class="name">{{entry['path']}}</p>
<dl><dt>removed</dt><dd>{{entry['when']}}</dd>
<dt>kept as</dt><dd>{{entry['kept'] or 'nothing: the file was deleted'}}</dd></dl>
% if entry['on_disk']:
% include('button', action="/undo-removal", csrf=csrf, ident=entry['id'], label="Undo: back on the frame")
% end
</div></article>
% end
% if not page.entries:
<p>Nothing was removed.</p>
% end
% include('pager', page=page, current=current)
