"""TwiML, the language a call is driven with: twilio's builders (used by bot.voice.twiml)."""

from twilio.twiml.voice_response import Gather, VoiceResponse

__all__ = ["Gather", "VoiceResponse"]
