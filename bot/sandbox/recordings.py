"""The Recordings resource: what ``<Record>`` made, as JSON and as the audio itself.

* ``GET …/Recordings/{Sid}.json``: the ``api.v2010.account.recording`` JSON;
* ``GET …/Recordings/{Sid}`` or ``…/{Sid}.wav``: the persona's clip as it
  was given (``audio/x-wav``), what a bot fetches from ``RecordingUrl``;
  ``.mp3`` is refused (20404: the sandbox converts nothing);
* ``DELETE …/Recordings/{Sid}.json``: 204, the recording is gone;
* ``GET …/Recordings.json``: newest first, ``CallSid`` and ``DateCreated``
  filters, paging as for messages.

All of them need HTTP Basic authentication like the rest of the REST API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.sandbox import spec
from bot.sandbox.errors import TwilioApiError
from bot.sandbox.params import FormValues, date_filters, date_matches, first
from bot.sandbox.resources import DEFAULT_PAGE_SIZE, account_uri, page_json, recording_json
from bot.sandbox.state import Recording

if TYPE_CHECKING:
    from bot.sandbox.sandbox import Sandbox


class Recordings:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox

    def _get(self, account_sid: str, sid: str) -> Recording:
        recording = self.sb.store.recordings.get(sid)
        if recording is None or recording.account_sid != account_sid:
            raise TwilioApiError(20404, f"The requested resource /2010-04-01/Accounts/{account_sid}/Recordings/{sid}.json was not found")
        return recording

    def fetch(self, account_sid: str, sid: str) -> dict[str, Any]:
        with self.sb.store.lock:
            return recording_json(self._get(account_sid, sid), self.sb.base_url)

    def media(self, account_sid: str, sid: str) -> Recording:
        with self.sb.store.lock:
            return self._get(account_sid, sid)

    def delete(self, account_sid: str, sid: str) -> None:
        with self.sb.store.lock:
            self._get(account_sid, sid)
            del self.sb.store.recordings[sid]

    def list(self, account_sid: str, query: FormValues) -> dict[str, Any]:
        op = spec.operation(spec.RECORDINGS, "GET")
        problems, _ = spec.check_params(op.query_params, query)
        if problems:
            raise TwilioApiError(400, f"Invalid parameter {problems[0]}")
        names = ("CallSid", "DateCreated", "DateCreated<", "DateCreated>")
        filters = [(name, value) for name in names if (value := first(query, name))]
        dates = date_filters(query, names[1:])
        call_sid = first(query, "CallSid")
        with self.sb.store.lock:
            records = [
                r
                for r in self.sb.store.recordings.values()
                if r.account_sid == account_sid
                and (call_sid is None or r.call_sid == call_sid)
                and all(date_matches(r.date_created, name, value) for name, value in dates)
            ]
            base_url = self.sb.base_url
        records.sort(key=lambda r: (r.date_created, r.seq), reverse=True)
        return page_json(
            key="recordings",
            list_uri=f"{account_uri(account_sid)}/Recordings.json",
            filters=filters,
            records=records,
            render=lambda r: recording_json(r, base_url),
            sid_of=lambda r: r.sid,
            page_size=int(first(query, "PageSize") or DEFAULT_PAGE_SIZE),
            page=int(first(query, "Page") or 0),
            token=first(query, "PageToken"),
        )
