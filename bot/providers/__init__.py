"""Telephony providers: everything the bot knows about one provider's API lives in its package.

:mod:`bot.providers.twilio` is the only package that imports ``twilio`` or knows
Twilio's status words and error codes (docs/architecture.md, "Providers").  The
rest of the bot talks to it through the channel adapters (bot.channels), the
dispatcher's lookup protocol (:class:`bot.dispatch.reconcile.ProviderLookup`) and
the status tables.  A second provider would be a package beside it.
"""
