"""The bot's webhooks: Twilio SMS, status and voice callbacks, email unsubscribe, media, health.

The composition root, :func:`bot.app.create_app`, mounts them beside the console
and the REST API; docs/webhooks.md describes the routes.
"""
