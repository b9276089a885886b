"""The ``get_weather`` tool: current conditions from Open-Meteo (public, no key needed).

Two requests: the geocoding API turns a place name into coordinates, the forecast API
gives the current conditions there. Any failure (offline, timeout, HTTP error, unknown
place) raises ``WeatherError`` with a sentence the model can reason about; the tool
registry turns it into an error tool result, so the agent never crashes on it.

``ABSURD_TUI_WEATHER_URL`` replaces both service hosts with one base URL (serving
``/v1/search`` and ``/v1/forecast``), for tests and for self-hosted Open-Meteo.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

BASE_URL_ENV = "ABSURD_TUI_WEATHER_URL"
GEOCODING_URL = "https://geocoding-api.open-meteo.com"
FORECAST_URL = "https://api.open-meteo.com"
TIMEOUT_SECONDS = 5.0
MAX_RESPONSE_BYTES = 1_000_000

CURRENT_FIELDS = (
    "temperature_2m",
    "apparent_temperature",
    "relative_humidity_2m",
    "precipitation",
    "weather_code",
    "wind_speed_10m",
)

# WMO weather interpretation codes, as documented by Open-Meteo.
WEATHER_CODES = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "slight rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "slight snowfall",
    73: "moderate snowfall",
    75: "heavy snowfall",
    77: "snow grains",
    80: "slight rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "slight snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with slight hail",
    99: "thunderstorm with heavy hail",
}


class WeatherError(Exception):
    """The weather could not be fetched; the message is meant for the model."""


def get_weather(location: str) -> dict[str, Any]:
    location = location.strip() if isinstance(location, str) else ""
    if not location:
        raise WeatherError("location must be a non-empty place name, e.g. 'Paris' or 'Tokyo'")
    override = os.environ.get(BASE_URL_ENV, "").strip().rstrip("/")
    geocoding = override or GEOCODING_URL
    forecast = override or FORECAST_URL

    found = _get_json(
        f"{geocoding}/v1/search",
        {"name": location, "count": 1, "language": "en", "format": "json"},
    )
    places = found.get("results") if isinstance(found, dict) else None
    if not places:
        raise WeatherError(f"no place named {location!r} was found by the geocoding service")
    place = places[0]
    try:
        latitude, longitude = float(place["latitude"]), float(place["longitude"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeatherError(
            f"the geocoding service returned no coordinates for {location!r}"
        ) from exc

    weather = _get_json(
        f"{forecast}/v1/forecast",
        {
            "latitude": latitude,
            "longitude": longitude,
            "current": ",".join(CURRENT_FIELDS),
            "timezone": "auto",
        },
    )
    current = weather.get("current") if isinstance(weather, dict) else None
    if not isinstance(current, dict):
        raise WeatherError("the weather service returned no current conditions")
    units = weather.get("current_units") or {}

    def measure(field: str) -> str | None:
        value = current.get(field)
        if value is None:
            return None
        return f"{value} {units.get(field, '')}".strip()

    code = current.get("weather_code")
    return {
        "location": ", ".join(
            str(part)
            for part in (place.get("name"), place.get("admin1"), place.get("country"))
            if part
        ),
        "latitude": latitude,
        "longitude": longitude,
        "observed_at": current.get("time"),
        "timezone": weather.get("timezone"),
        "conditions": WEATHER_CODES.get(code, f"weather code {code}") if code is not None else None,
        "temperature": measure("temperature_2m"),
        "feels_like": measure("apparent_temperature"),
        "humidity": measure("relative_humidity_2m"),
        "precipitation": measure("precipitation"),
        "wind_speed": measure("wind_speed_10m"),
        "source": "Open-Meteo",
    }


def _get_json(url: str, query: dict[str, Any]) -> Any:
    full = f"{url}?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(
        full, headers={"Accept": "application/json", "User-Agent": "absurd-tui"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            body = response.read(MAX_RESPONSE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise WeatherError(f"the weather service answered HTTP {exc.code} ({exc.reason})") from exc
    except urllib.error.URLError as exc:
        raise WeatherError(
            f"the weather service could not be reached ({exc.reason}); the machine may be offline"
        ) from exc
    except TimeoutError as exc:
        raise WeatherError(
            f"the weather service did not answer within {TIMEOUT_SECONDS:g} seconds"
        ) from exc
    except OSError as exc:
        raise WeatherError(f"the weather service could not be reached ({exc})") from exc
    if len(body) > MAX_RESPONSE_BYTES:
        raise WeatherError("the weather service returned an unexpectedly large response")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise WeatherError("the weather service returned a response that is not JSON") from exc
