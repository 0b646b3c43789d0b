% rebase('base', title=title, nav=nav, csrf=csrf, flash=flash, current=current)
<p>Photos taken off the frame. They are kept in the removed folder; the same photo sent again goes to quarantine. Undo puts one back.</p>
% for entry in page.entries:
<article class="entry">
<div class="facts"><dl>
% for key, value in entry.items():
% if key != 'id' and value != '':
<dt>{{key.replace('_', ' ')}}</dt><dd>{{value}}</dd>
% end
% end
</dl>
% include('button', action="/undo-removal", csrf=csrf, ident=entry['id'], label="Undo: back on the frame")
</div></article>
% end
% if not page.entries:
<p>Nothing was removed.</p>
% end
% include('pager', page=page, current=current)
