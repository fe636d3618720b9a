"""A local Twilio-compatible sandbox: SMS and calls without leaving the machine.

The official ``twilio`` client talks to it unchanged once
``client.api.base_url`` points at it; it signs every webhook exactly as
Twilio does, simulates phones with scriptable personas, injects faults, and
runs on a clock that tests move by hand.  See docs/sandbox.md.
"""

from bot.sandbox.config import SandboxConfig, load_config_file
from bot.sandbox.errors import SandboxError, TwilioApiError
from bot.sandbox.callflow import CallEvent, Spoken
from bot.sandbox.phones import CallBehaviour, CallTurn, Persona, ScriptedReply
from bot.sandbox.sandbox import Sandbox
from bot.sandbox.server import SandboxServer, ThreadedServer

__all__ = [
    "CallBehaviour",
    "CallEvent",
    "CallTurn",
    "Persona",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxServer",
    "Spoken",
    "ScriptedReply",
    "ThreadedServer",
    "TwilioApiError",
    "load_config_file",
]
