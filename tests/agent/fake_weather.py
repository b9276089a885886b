"""A local stand-in for Open-Meteo's geocoding (/v1/search) and forecast (/v1/forecast) APIs."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PLACES = {
    "paris": {
        "name": "Paris",
        "latitude": 48.85341,
        "longitude": 2.3488,
        "country": "France",
        "admin1": "Ile-de-France",
    },
}


class FakeOpenMeteo:
    def __init__(self, *, forecast_status: int = 200) -> None:
        self.forecast_status = forecast_status
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-open-meteo", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeOpenMeteo:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                fake.requests.append((url.path, query))
                if url.path == "/v1/search":
                    place = PLACES.get(query.get("name", [""])[0].strip().lower())
                    self._send(200, {"results": [place]} if place else {"generationtime_ms": 0.1})
                elif url.path == "/v1/forecast":
                    if fake.forecast_status != 200:
                        self._send(
                            fake.forecast_status, {"error": True, "reason": "stand-in failure"}
                        )
                        return
                    self._send(
                        200,
                        {
                            "timezone": "Europe/Paris",
                            "current_units": {
                                "temperature_2m": "°C",
                                "apparent_temperature": "°C",
                                "relative_humidity_2m": "%",
                                "precipitation": "mm",
                                "wind_speed_10m": "km/h",
                            },
                            "current": {
                                "time": "2026-11-26T15:00",
                                "temperature_2m": 7.5,
                                "apparent_temperature": 5.1,
                                "relative_humidity_2m": 81,
                                "precipitation": 0.0,
                                "weather_code": 3,
                                "wind_speed_10m": 12.4,
                            },
                        },
                    )
                else:
                    self._send(404, {"error": True})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
