% rebase('base', title=title, nav=nav, csrf=csrf, flash=flash, current=current)
<p>Mail from these addresses was refused: they are not in allowed_senders. The mail waits unread in the processed folder; allow a sender and the next run fetches it back from there.</p>
% if page.note:
<p class="note">{{page.note}}</p>
% end
% for entry in page.entries:
<article class="entry">
<div class="facts"><p class="name">{{entry['address']}}</p>
<dl><dt>as</dt><dd>{{entry['display']}}</dd>
<dt>last subject</dt><dd>{{entry['subject']}}</dd>
<dt>messages</dt><dd>{{entry['messages']}}</dd>
<dt>last refused</dt><dd>{{entry['when']}}</dd></dl>
% if entry['allowed']:
<p>Allowed now: the next run fetches this sender's mail.</p>
% else:
% include('button', action="/allow-sender", csrf=csrf, ident=entry['id'], label="Allow this sender")
% end
</div></article>
% end
% if not page.entries:
<p>No sender was refused.</p>
% end
% include('pager', page=page, current=current)
