"""Demo tasks for trying the console: ``absurd-tui --tasks scripts/demo_tasks.py``.

A few realistic shapes of durable work: multi-step tasks, a flaky one that needs a
retry, a failing one, a timer, and one that waits for an approval event. The
screenshot script (scripts/screenshots.py) runs them too.
"""

from __future__ import annotations

import time

from absurd_tui import register_task


@register_task("resize-image", queue="default")
def resize_image(params, ctx):
    image = ctx.step("fetch", lambda: {"bytes": 48_213, "name": params.get("name", "photo.jpg")})
    for size in params.get("sizes", [64, 256, 1024]):
        ctx.step("resize", lambda size=size: (time.sleep(params.get("pause", 0.2)), f"{size}px")[1])
    return ctx.step(
        "upload", lambda: {"uploaded": image["name"], "sizes": len(params.get("sizes", [1, 2, 3]))}
    )


@register_task("send-welcome-email", queue="emails")
def send_welcome_email(params, ctx):
    body = ctx.step("render", lambda: f"Welcome, {params.get('user', 'friend')}!")
    ctx.step(
        "send",
        lambda: (
            time.sleep(params.get("pause", 0.1)),
            {"to": params.get("email"), "chars": len(body)},
        )[1],
    )
    return {"sent": True}


@register_task("charge-card", queue="default", default_max_attempts=2)
def charge_card(params, ctx):
    ctx.step("authorize", lambda: {"order": params.get("order"), "amount": params.get("amount")})
    if params.get("decline"):
        raise RuntimeError(f"card declined for order {params.get('order')}: insufficient funds")
    return ctx.step("capture", lambda: {"captured": params.get("amount")})


@register_task("nightly-report", queue="default")
def nightly_report(params, ctx):
    ctx.step("collect", lambda: {"rows": 48_211})
    ctx.sleep_for("wait-for-window", params.get("seconds", 3600))
    return ctx.step("publish", lambda: {"url": "https://reports.example/nightly"})


@register_task("approve-order", queue="default")
def approve_order(params, ctx):
    order = params.get("order", 1)
    ctx.step("reserve-stock", lambda: {"order": order, "reserved": True})
    decision = ctx.await_event(f"order-{order}.approved", timeout=params.get("timeout"))
    return ctx.step("ship", lambda: {"order": order, "approved_by": (decision or {}).get("by")})
