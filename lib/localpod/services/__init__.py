"""The HTTP faces of localpod, one module (or package) per real host or API.

- :mod:`~localpod.services.rest`: Runpod's REST API v2 (``api.runpod.io/v2``), one module per resource;
- :mod:`~localpod.services.graphql_api`: the GraphQL subset the ``runpod`` SDK uses;
- :mod:`~localpod.services.queue`: the serverless queue and OpenAI routes (``api.runpod.ai``);
- :mod:`~localpod.services.hub`: the Hugging Face Hub calls (``huggingface.co``);
- :mod:`~localpod.services.control`: localpod's own ``/_localpod`` routes.

**One style for route handlers: closures inside ``routes(ctx)``.** Each module exposes
``routes(ctx: ServerContext) -> list[BaseRoute]``; its handlers are ``async def`` functions defined
inside it, closing over ``ctx`` and over whatever they share (a resource backend, a rate limiter, a
per-request helper). Chosen over a class per service because a handler then reads as one plain
function with everything it uses in sight, needs no ``self.`` plumbing, and cannot leak state
between two apps (each ``create_app`` calls ``routes`` again; tests build many). GraphQL follows
the same rule: its root fields are closures built by ``routes`` and handed to graphql-core as the
root value, so only the schema (slow to build) is shared. Helpers that need no context stay
module-level functions.

Rules about resources are not here: handlers parse and serialise, and the backends in
:mod:`localpod.resources` decide.
"""
