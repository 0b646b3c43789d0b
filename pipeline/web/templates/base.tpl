<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} · frame-ingest</title>
<link rel="stylesheet" href="/static/style.css">
</head><body>
% if nav:
<header><nav>
% for link, label in (("arrivals", "Arrivals"), ("quarantine", "Quarantine"), ("rejected", "Rejected"), ("removed", "Removed"), ("senders", "Senders"), ("sources", "Sources")):
<a href="/{{link}}"{{!' class="here"' if link == current else ''}}>{{label}}</a>
% end
</nav>
<form method="post" action="/logout" class="logout"><input type="hidden" name="csrf" value="{{csrf}}"><button>Log out</button></form>
</header>
% end
<main>
<h1>{{title}}</h1>
% if flash:
<p class="flash" role="status">{{flash}}</p>
% end
{{!base}}
</main>
</body></html>
