"""Twilio: the only package that imports ``twilio`` or knows Twilio's status words and error codes.

* :mod:`.client` -- the one factory of twilio clients: sends and calls (async), lookups,
  recording downloads (:class:`~.client.RecordingDownloader`), webhook signatures;
* :mod:`.webhooks` -- the only reader of Twilio's form fields: each webhook verified and
  turned into a provider-neutral event of :mod:`bot.channels.events`;
* :mod:`.errors` -- the error table: code -> transient / permanent / configuration and its effect;
* :mod:`.statuses` -- message and call status words, ranked;
* :mod:`.lookup` -- the dispatcher's crash and status lookups, one matching rule for SMS and calls;
* :mod:`.twiml` -- a neutral call plan (and an SMS answer) rendered as TwiML.

Submodules are imported where used (nothing here), so the dispatcher can import
the error table without loading the lookup, which imports the dispatcher's types.
"""
