"""Twilio: the only package that imports ``twilio`` or knows Twilio's status words and error codes.

* :mod:`.client` -- the one factory of twilio clients: sends and calls (async), lookups,
  recording downloads, webhook signatures;
* :mod:`.errors` -- the error table: code -> transient / permanent / configuration and its effect;
* :mod:`.statuses` -- message and call status words, ranked;
* :mod:`.lookup` -- the dispatcher's crash and status lookups, one matching rule for SMS and calls;
* :mod:`.twiml` -- the TwiML builders the voice service speaks with.

Submodules are imported where used (nothing here), so the dispatcher can import
the error table without loading the lookup, which imports the dispatcher's types.
"""
