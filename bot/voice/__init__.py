"""Scripted voice calls: the call service between Twilio's webhooks and the script engine.

* :mod:`bot.voice.urls` -- the answer, input, status and prompt URLs (pure);
* :mod:`bot.voice.twiml` -- engine actions to TwiML;
* :mod:`bot.voice.media` -- the media directory: prompts, recordings;
* :mod:`bot.voice.service` -- :class:`~bot.voice.service.CallService`: answer,
  input, status (one transaction each), the effects of a call through bot.replies.

docs/voice.md describes the call flow.  This package never places a call (the
dispatcher does, bot.dispatch.voice) and never imports a channel adapter.
"""
