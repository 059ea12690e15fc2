"""A bare aiohttp server with one handler that does nothing: the baseline of the devhost's
own cost per request in `python -m benchmarks scoring`. `python bare_aiohttp.py PORT`."""

import sys

from aiohttp import web


async def noop(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text="ok")


def main(port: int) -> None:
    app = web.Application()
    app.router.add_route("*", "/api/noop", noop)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
