"""ASGI entry point: HTTP through Django, websockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companion.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from companion.routing import websocket_urlpatterns  # noqa: E402
from companion.turnstile import TurnstileMiddleware  # noqa: E402
from companion.wsauth import websocket_auth_stack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            TurnstileMiddleware(websocket_auth_stack(URLRouter(websocket_urlpatterns)))
        ),
    }
)

# What is loaded by now lives as long as the process. Kept out of the garbage collector's full
# passes, which otherwise walk all of Django's objects: under load such a pass stopped the event
# loop (every stream's next word) for over 100 ms.
get_resolver().url_patterns  # import the views now rather than on the first request  # noqa: B018
gc.collect()  # what is garbage already is freed, not frozen
gc.freeze()
# The youngest generation is collected once 50,000 more objects have been made than freed, rather
# than 700. Each stream waiting for its next word is a few suspended coroutines that outlive many
# such passes: at 700, the passes (~30 a second at 300 streams) mostly walked them again, and
# moved them on to the middle generation, whose passes then walked them too. Objects freed by
# their reference count never wait for a pass, so what a pass finds stays small.
gc.set_threshold(50_000, 20, 10)
