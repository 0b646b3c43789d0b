% rebase('base', title=title, nav=nav, csrf=csrf, flash=flash, current=current)
<p>Files that could not go on the frame, with the reason ({{page.count}}).</p>
% for entry in page.entries:
<article class="entry">
<div class="facts"><p class="name">{{entry['path']}}</p>
<dl><dt>reason</dt><dd>{{entry['reason']}}</dd></dl>
% include('origin', entry=entry)
</div></article>
% end
% if not page.entries:
<p>Nothing was rejected.</p>
% end
% include('pager', page=page, current=current)
