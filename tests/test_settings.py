"""Settings: TOML file, environment, precedence, and the start-up checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tertulia.errors import ConfigurationError
from tertulia.settings import LIMIT_KEYS, load_settings

EXAMPLE = """
database_url = "sqlite+aiosqlite:///./tertulia.db"
broker_url = "memory://"
rooms = true
allowed_origins = ["http://localhost:3000"]
manager = "Manager"

[limits]
MAX_ATTACHMENT_SIZE = 15728640

[bots.ECHO]
module = "tertulia.bots.builtin"
class = "UpperCaseEchoBot"
required = false
args = []
kwargs = {}

[bots.Manager]
module = "tertulia.bots.builtin"
class = "TransparentManagerBot"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tertulia.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_toml_shape_loads(tmp_path: Path) -> None:
    """The issue's example file loads: rooms, origins, manager, limits, bot specs."""
    settings = load_settings(write(tmp_path, EXAMPLE))
    assert settings.rooms is True
    assert settings.allowed_origins == ["http://localhost:3000"]
    assert settings.manager == "Manager"
    assert settings.bots["ECHO"].class_name == "UpperCaseEchoBot"
    # (the limits the file leaves out keep their defaults: test_a_limit_left_out_...)
    assert settings.chat_limits == {
        "MAX_ATTACHMENT_SIZE": 15728640,
        "MAX_IMAGE_SIZE": 15728640,
        "MAX_VIDEO_SIZE": 26214400,
        "MAX_AUDIO_SIZE": 15728640,
        "MAX_VOICE_SIZE": 15728640,
    }


def test_defaults_offer_echo_and_calculator_with_rooms_off() -> None:
    """Without a file: ECHO and Calculator, rooms off (opt-in, PROTOCOL 9 #37: with them
    anyone may list, join and read every conversation; security QA found them on), SQLite
    in the working directory."""
    settings = load_settings()
    assert list(settings.bots) == ["ECHO", "Calculator"]
    assert settings.rooms is False
    assert settings.database_url == "sqlite+aiosqlite:///./tertulia.db"
    assert set(settings.chat_limits) == set(LIMIT_KEYS)


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TERTULIA_* variables override the file, nested ones with a double underscore."""
    monkeypatch.setenv("TERTULIA_ROOMS", "false")
    monkeypatch.setenv("TERTULIA_LIMITS__MAX_IMAGE_SIZE", "7")
    settings = load_settings(write(tmp_path, EXAMPLE))
    assert settings.rooms is False
    assert settings.chat_limits["MAX_IMAGE_SIZE"] == 7


def test_a_limit_left_out_keeps_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting one limit (the README's TERTULIA_LIMITS__MAX_IMAGE_SIZE=0, or a partial
    [limits] table) changes that one; the others keep their defaults, not 0 (which would
    refuse every file of those kinds)."""
    monkeypatch.setenv("TERTULIA_LIMITS__MAX_IMAGE_SIZE", "0")
    defaults = load_settings(write(tmp_path, "")).chat_limits
    assert defaults["MAX_IMAGE_SIZE"] == 0
    assert defaults["MAX_VIDEO_SIZE"] == 25 * 1024 * 1024
    assert defaults["MAX_ATTACHMENT_SIZE"] == 15 * 1024 * 1024
    monkeypatch.delenv("TERTULIA_LIMITS__MAX_IMAGE_SIZE")
    partial = load_settings(write(tmp_path, "[limits]\nMAX_VOICE_SIZE = 1000\n")).chat_limits
    assert partial["MAX_VOICE_SIZE"] == 1000
    assert partial["MAX_IMAGE_SIZE"] == 15 * 1024 * 1024


def test_config_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TERTULIA_CONFIG names the file when no --config is given."""
    monkeypatch.setenv("TERTULIA_CONFIG", str(write(tmp_path, EXAMPLE)))
    assert load_settings().manager == "Manager"


def test_blab_five_item_specs_are_accepted(tmp_path: Path) -> None:
    """BLAB's (module, class, required, args, kwargs) arrays work as bot specs."""
    text = 'ECHO = ["tertulia.bots.builtin", "UpperCaseEchoBot", true, [], {delay = 0}]'
    settings = load_settings(write(tmp_path, "[bots]\n" + text))
    spec = settings.bots["ECHO"]
    assert (spec.required, spec.kwargs) == (True, {"delay": 0})


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ('ECHO = ["tertulia.bots.builtin", "UpperCaseEchoBot", false, [], {}]', "[bots.ECHO]"),
        ('ECHO = ["tertulia.bots.builtin", "UpperCaseEchoBot", [], {}]', "[bots.ECHO]"),
        ('[Shout]\nmodule = "mybots"\nclass = "ShoutBot"', "[bots.Shout]"),
        ('"My bot" = {class = "ShoutBot"}', '[bots."My bot"]'),
    ],
)
def test_a_bot_outside_bots_is_pointed_there(tmp_path: Path, text: str, hint: str) -> None:
    """A bot spec at the top of the file, not in [bots] (QA, after the README's one-line
    array), is refused with the table it belongs in."""
    with pytest.raises(ConfigurationError) as refused:
        load_settings(write(tmp_path, text))
    assert str(refused.value).endswith(f": is not a setting; did you mean {hint}?")


def test_a_misspelt_key_is_not_taken_for_a_bot(tmp_path: Path) -> None:
    """A key close to a setting, with a value of its own kind, is hinted at that setting."""
    with pytest.raises(ConfigurationError, match=r"allowed_host: .*did you mean allowed_hosts\?"):
        load_settings(write(tmp_path, 'allowed_host = ["a", "b", "c", "d", "e"]'))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[bots]\nX = ["tertulia.bots.builtin", "UpperCaseEchoBot", [], {}]', "5 items"),
        ('[bots.X]\nmodule = "no.such.module"\nclass = "Bot"', "bot 'X': cannot import module"),
        (
            '[bots.X]\nmodule = "tertulia.bots.builtin"\nclass = "UpperCaseEchoBoot"',
            "bot 'X': class 'UpperCaseEchoBoot' not found in module 'tertulia.bots.builtin'; "
            "did you mean 'UpperCaseEchoBot'",
        ),
        ('[bots.X]\nmodule = "tertulia.bots.builtin"\nclass = "Nope"', "'Nope' not found in mod"),
        ('[bots.X]\nmodule = "tertulia.settings"\nclass = "LIMIT_KEYS"', "is not a class"),
        ('manager = "Ghost"', "manager 'Ghost' is not among the bots"),
        ("[limits]\nMAX_SIZE = 1", "unknown limit"),
        ("[limits]\nMAX_IMAGE_SIZE = -1", "limits.MAX_IMAGE_SIZE: .*greater than or equal to 0"),
        ("rooms = 3", "rooms"),
        ("production = true", "session_cookie_secure"),
        ('session_cookie_samesite = "none"', "needs a secure cookie"),
        ("not toml = = =", "not valid TOML"),
        ("presence_lease = 0.5", "presence_lease"),
        ('broker_url = "rabbit://x"', "broker_url"),
        # (QA: redis-py reads a database that is not a number as 0, another installation's)
        ('broker_url = "redis://127.0.0.1:6379/1O"', "Redis database must be a number.*'1O'"),
        ('broker_url = "rediss://h/abc"', "broker_url: .*not 'abc'"),
        # (QA: "start-up failed: ArgumentError", status 1, where a typo is status 2)
        ('database_url = "garbage"', "database_url: .*not a database URL"),
        ('database_url = "mysql://u@h/db"', "database_url: .*unsupported database 'mysql'"),
        ('database_url = "sqlite+aiosqlite:///x.db"\ndatabase_schema = "s"', "for PostgreSQL"),
        ("retention_days = inf", "retention_days"),
        ("session_max_age = 999999999999999", "session_max_age"),
        ("bot_session_max_age = 999999999999999", "bot_session_max_age"),
        ("database_schema = 'bad\"name'", "invalid database schema name 'bad\"name'"),
        ("database_schema = 'Bad-Name'", "database_schema: .*'Bad-Name': a plain SQL identifier"),
        ("database_schema = ''", "invalid database schema name ''"),
        # kept as written where quoted, folded to lower case where not: two schemas
        ("database_schema = 'QA_review'", "database_schema: .*'QA_review': a plain SQL"),
    ],
)
def test_bad_configurations_stop_start_up(tmp_path: Path, text: str, message: str) -> None:
    """Each broken configuration raises one ConfigurationError naming the problem."""
    with pytest.raises(ConfigurationError, match=message):
        load_settings(write(tmp_path, text))


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TERTULIA_ALLOWED_ORIGINS", "http://x", "allowed_origins"),
        ("TERTULIA_LIMITS", "{bad", "limits"),
        ("TERTULIA_LOG_LEVEL", "verbose", "log_level"),
    ],
)
def test_bad_environment_variables_stop_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """A variable pydantic-settings cannot even parse (a list or table that is not JSON)
    is a ConfigurationError naming it too, not a traceback; so is an unknown log level."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message):
        load_settings(write(tmp_path, ""))


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("TERTULIA_DATABSE_URL", "TERTULIA_DATABASE_URL"),
        ("TERTULIA_BROKER", "TERTULIA_BROKER_URL"),
        ("tertulia_database_url_", "TERTULIA_DATABASE_URL"),
        # (found by QA: a typo before the `__` of a nested variable was ignored)
        ("TERTULIA_LIMIT__MAX_IMAGE_SIZE", "TERTULIA_LIMITS__MAX_IMAGE_SIZE"),
        ("TERTULIA_RATELIMITS__CREATE", "TERTULIA_RATE_LIMITS__CREATE"),
        ("tertulia_bot__echo__class", "TERTULIA_BOTS__echo__class"),
    ],
)
def test_a_misspelt_setting_in_the_environment_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, suggestion: str
) -> None:
    """A typo would leave the default in place unnoticed (SQLite in the working directory
    where PostgreSQL was meant): it is refused, with the name it is close to."""
    monkeypatch.setenv(variable, "postgresql+asyncpg://db/chat")
    with pytest.raises(ConfigurationError, match=f"{variable} is not a setting.*{suggestion}"):
        load_settings(write(tmp_path, ""))


def test_other_tertulia_variables_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Variables of the same prefix that name no setting and are close to none (an example
    bot's TERTULIA_URL, the test suite's TERTULIA_TEST_*) are not the server's business."""
    monkeypatch.setenv("TERTULIA_URL", "http://127.0.0.1:8000")
    monkeypatch.setenv("TERTULIA_TEST_POSTGRES", "postgresql://x")
    monkeypatch.setenv("TERTULIA_LIMITS__MAX_IMAGE_SIZE", "1024")
    assert load_settings(write(tmp_path, "")).chat_limits["MAX_IMAGE_SIZE"] == 1024


SPEC = '[bots.B]\nmodule = "tertulia.bots.builtin"\nclass = "CalculatorBot"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "bot_delivery_lease = 1e12",
            "bot_delivery_lease: Input should be less than or equal to 86400",
        ),
        ("bot_poll_interval = 1e12", "bot_poll_interval: .*less than or equal to 3600"),
        ("presence_grace = 1e12", "presence_grace: .*less than or equal to 3600"),
        (
            "ws_max_message = 100000000000000000000",
            "ws_max_message: .*less than or equal to 67108864",
        ),
        ("ws_send_queue = 100000000000000000000", "ws_send_queue: .*less than or equal to 1000000"),
        ("history_max_limit = 100000000000000000000", "history_max_limit: .*less than or equal"),
        ("max_participants = 100000000000000000000", "max_participants: .*less than or equal"),
        ("[limits]\nMAX_VIDEO_SIZE = 1e30", "limits.MAX_VIDEO_SIZE: "),
        ("[limits]\nMAX_VIDEO_SIZE = 100000000000000000000", "limits.MAX_VIDEO_SIZE: .*less than"),
        (SPEC + "timeout = 1e12", "bots.B.timeout: .*less than or equal to 86400"),
        (SPEC + "timeout = inf", "bots.B.timeout: .*less than or equal to 86400"),
        (SPEC + "retries = 100000000000000000000", "bots.B.retries: .*less than or equal to 100"),
        (SPEC + "concurrency = 100000000000000000000", "bots.B.concurrency: .*less than"),
        # (ops QA: accepted, and then no limit at all, or every request refused)
        ('[rate_limits]\nmessage = "100000000000/second"', "message: .* over 1,000,000"),
        ('[rate_limits]\ncreate = "0/minute"', 'create: .* refuses everything; "" turns it off'),
    ],
)
def test_numbers_beyond_their_bounds_stop_start_up(tmp_path: Path, text: str, message: str) -> None:
    """(Found by QA: bot_delivery_lease=1e12 was an OverflowError at start, a traceback with
    status 3; ws_max_message=1e20 started and then failed every frame.) Every number has an
    upper bound, said in one line."""
    with pytest.raises(ConfigurationError, match=message):
        load_settings(write(tmp_path, text))


def test_a_number_beyond_its_bound_in_the_environment_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The QA report's own variable."""
    monkeypatch.setenv("TERTULIA_BOT_DELIVERY_LEASE", "1e12")
    with pytest.raises(ConfigurationError, match="bot_delivery_lease"):
        load_settings(write(tmp_path, ""))


def test_the_log_level_is_read_in_any_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERTULIA_LOG_LEVEL", "debug")
    assert load_settings(write(tmp_path, "")).log_level == "DEBUG"


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported, not ignored."""
    with pytest.raises(ConfigurationError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml")


def test_bot_names_are_limited(tmp_path: Path) -> None:
    """A bot name must fit in a participant name (1-50 characters)."""
    with pytest.raises(ConfigurationError, match="1-50 characters"):
        load_settings(
            write(
                tmp_path,
                f'[bots.{"B" * 51}]\nmodule = "tertulia.bots.builtin"\nclass = "CalculatorBot"',
            )
        )


def test_a_list_in_an_environment_variable_that_is_not_json_says_how_to_write_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(Found by QA: the error named only a JSON decoding position.)"""
    monkeypatch.setenv("TERTULIA_ALLOWED_ORIGINS", "http://a.example")
    with pytest.raises(ConfigurationError, match=r"allowed_origins.*is JSON, e\.g\."):
        load_settings(None)


def test_a_bot_of_the_file_is_changed_by_variables_in_any_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Found by QA: TERTULIA_BOTS__ECHO__CLASS made a second bot `echo` beside the file's
    ECHO, variable names being read lower-cased.) It changes the file's ECHO, the fields it
    names only."""
    monkeypatch.setenv("TERTULIA_BOTS__ECHO__CLASS", "CalculatorBot")
    monkeypatch.setenv("TERTULIA_BOTS__manager__REQUIRED", "true")
    settings = load_settings(write(tmp_path, EXAMPLE))
    assert list(settings.bots) == ["ECHO", "Manager"]
    assert settings.bots["ECHO"].class_name == "CalculatorBot"
    assert settings.bots["ECHO"].module == "tertulia.bots.builtin"
    assert settings.bots["Manager"].required is True


def test_variables_for_bots_differing_only_in_case_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which of the file's ECHO and Echo TERTULIA_BOTS__ECHO__… means cannot be told."""
    monkeypatch.setenv("TERTULIA_BOTS__ECHO__RETRIES", "1")
    text = EXAMPLE + '[bots.Echo]\nmodule = "tertulia.bots.builtin"\nclass = "CalculatorBot"\n'
    with pytest.raises(ConfigurationError, match=r"bot 'echo' could mean .*\['ECHO', 'Echo'\]"):
        load_settings(write(tmp_path, text))


def test_a_manager_named_in_another_case_than_its_bot_gets_a_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bot only in variables is named in lower case: the manager's name is told so."""
    monkeypatch.setenv("TERTULIA_MANAGER", "Shout")
    monkeypatch.setenv("TERTULIA_BOTS__Shout__MODULE", "tertulia.bots.builtin")
    monkeypatch.setenv("TERTULIA_BOTS__Shout__CLASS", "TransparentManagerBot")
    with pytest.raises(ConfigurationError, match=r"manager 'Shout' .*did you mean 'shout'"):
        load_settings(None)


def test_a_variable_changing_a_default_bot_says_how_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ECHO and Calculator are the defaults, no file's bots: a variable naming one defines
    a bot of its own, which needs its module and class. The refusal says so (ops QA: it
    said only "module: Field required")."""
    monkeypatch.setenv("TERTULIA_BOTS__ECHO__TIMEOUT", "5")
    with pytest.raises(ConfigurationError, match="ECHO and Calculator are changed by defining"):
        load_settings(write(tmp_path, ""))
