"""`frame-ingest serve`: a small page on the home network for whoever looks after the frame.

    server.py    serve(config): the checks before starting, then waitress
    app.py       the bottle routes: login, lists, previews, the buttons
    listings.py  what each page lists, from the store
    actions.py   what the buttons do: the CLI's functions, under the instance lock
    security.py  sessions, CSRF, Origin, login limits, headers, the 1 MiB limit
    templates/   bottle SimpleTemplate files (every {{value}} HTML-escaped)

See docs/web.md for the security model and docs/architecture.md for the choice of parts.
"""
