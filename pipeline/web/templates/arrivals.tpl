% rebase('base', title=title, nav=nav, csrf=csrf, flash=flash, current=current)
<p>The newest photos filed into Pictures ({{page.count}} in all).</p>
% for entry in page.entries:
<article class="entry">
% if entry['on_frame']:
<img src="/preview/{{entry['id']}}" alt="{{entry['path']}}" width="160">
% else:
<div class="gone">not on the frame</div>
% end
<div class="facts"><p class="name">{{entry['path']}}</p>
% include('origin', entry=entry)
% if entry['on_frame']:
% include('button', action="/remove", csrf=csrf, ident=entry['id'], label="Remove from frame")
% end
</div></article>
% end
% if not page.entries:
<p>Nothing has arrived yet.</p>
% end
% include('pager', page=page, current=current)
