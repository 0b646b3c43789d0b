% rebase('base', title=title, nav=nav, csrf=csrf, flash=flash, current=current)
<p>Files taken for copies of a photo already on the frame ({{page.count}}). If one is not a duplicate, restore it: it goes into Pictures and the pair is never taken for duplicates again.</p>
% for entry in page.entries:
<article class="entry">
<div class="pair">
<figure>
% if entry['exists']:
<img src="/preview/{{entry['id']}}" alt="the new file" width="140">
% else:
<div class="gone">file missing</div>
% end
<figcaption>this file</figcaption></figure>
<figure>
% if entry['matched']:
<img src="/preview/{{entry['id']}}/matched" alt="the library photo" width="140">
% else:
<div class="gone">no library photo</div>
% end
<figcaption>{{'removed from the frame' if entry['removed'] else 'on the frame'}}</figcaption></figure>
</div>
<div class="facts"><p class="name">{{entry['path']}}</p>
<dl><dt>copy of</dt><dd>{{entry['duplicate_of'] or '?'}}</dd>
% if entry['reason']:
<dt>why</dt><dd>{{entry['reason']}}</dd>
% end
</dl>
% include('origin', entry=entry)
% if entry['exists']:
% include('button', action="/restore", csrf=csrf, ident=entry['id'], label="Restore: not a duplicate")
% end
</div></article>
% end
% if not page.entries:
<p>Nothing in quarantine.</p>
% end
% include('pager', page=page, current=current)
