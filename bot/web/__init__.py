"""The bot's web face: Twilio webhooks, email unsubscribe, (later) the supervisor console.

``from bot.web.app import create_app``; docs/webhooks.md describes the routes.
"""
