"""Scripted voice calls: the call flow between neutral call events and the script engine.

* :mod:`bot.voice.urls` -- the answer, input, status and prompt URLs (pure);
* :mod:`bot.voice.media` -- the media directory: prompts, recordings;
* :mod:`bot.voice.services` -- what the call flow is given: speech, prompts, recording
  storage, the provider's recording downloads;
* :mod:`bot.voice.service` -- :class:`~bot.voice.service.CallService`: answer,
  input, status, recording (events of bot.channels.events in, a neutral
  :class:`~bot.channels.events.CallPlan` out; one transaction each), the effects of a
  call through bot.replies;
* :mod:`bot.voice.sessions` -- the call session written when the dispatcher marks a
  call ``sending``, linked to its CallSid, ended when never placed.

docs/voice.md describes the call flow.  This package never places a call (the
dispatcher does, bot.dispatch), never imports a channel adapter or the web, and
knows no provider's field names or call-control language (TwiML is rendered by the
provider, bot.providers.twilio.twiml).
"""
