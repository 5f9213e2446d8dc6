"""The smallest WSGI app, for running gunicorn (a real sd_notify sender) under herder."""


def app(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
