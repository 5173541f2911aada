"""Secrets planted in the leak tests: obviously fake values in every shape a user's files or command lines
carry them, each with the kind a fingerprint should name (None: hidden, but known only by where it sat)."""

from __future__ import annotations

ANTHROPIC = "sk-ant-api03-FAKEkey0nly4agentr0sterLeakTest_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ-01AA"
OPENAI = "sk-proj-FAKE0agentr0ster0leak0abcdefghijklmnopqrstuvT3BlbkFJ0123456789ABCDEFGHIJ"
GITHUB = "ghp_FAKE0agentr0ster0leak0abcdefghijklmnop"
GOOGLE = "AIzaSyFAKE0agentr0ster0leak0abcdefghijk"
AWS = "AKIAFAKE0AGENTR0LEAK"
GITLAB = "glpat-FAKEagentr0sterLeak01"
DB_PASSWORD = "FAKEdbPass-Leak-77"
SHORT_PASSWORD = "s3cr3tQ"  # under 8 characters: no fingerprint, but never shown
MYSQL_PASSWORD = "FAKEmysqlLeak"
REDIS_PASSWORD = "FAKEredisLeak9"
BEARER = "FAKEopaqueBearerLeak0123456789"
API_HEADER = "FAKEheaderKeyLeak4242"
COOKIE = "FAKEsessionCookieLeak99"
QUERY_TOKEN = "FAKEqueryTokenLeak31337"
PATH_KEY = "FAKEpathKey0agentr0ster0leak0xyz123"
JAVA_PROP = "FAKEjavaPropLeak55"

# value -> the kind its fingerprint names when the scan can know it
KINDS: dict[str, str | None] = {
    ANTHROPIC: "anthropic", OPENAI: "openai", GITHUB: "github", GOOGLE: "google", AWS: "aws", GITLAB: None,
    DB_PASSWORD: None, SHORT_PASSWORD: None, MYSQL_PASSWORD: None, REDIS_PASSWORD: None, BEARER: None,
    API_HEADER: None, COOKIE: None, QUERY_TOKEN: None, PATH_KEY: None, JAVA_PROP: None,
}
ALL = tuple(KINDS)

# A command line with every shape in it (one argument each, as a process or an MCP server's args has them).
ARGV = [
    "--print", f"env ANTHROPIC_API_KEY={ANTHROPIC} make",
    f"OPENAI_API_KEY={OPENAI}",
    "--password", SHORT_PASSWORD,
    f"-Dapi.key={JAVA_PROP}",
    "--header", f"Authorization: Bearer {BEARER}",
    "-H", f"x-api-key: {API_HEADER}",
    "-H", f"cookie: session={COOKIE}; theme=dark",
    f"postgresql://app:{DB_PASSWORD}@db.internal/prod",
    f"https://oauth2:{GITLAB}@gitlab.example.com/group/repo.git",
    f"https://mcp.example.com/s/{PATH_KEY}/sse?token={QUERY_TOKEN}&page=2",
    f"--github={GITHUB}",
    f"--google-key={GOOGLE}",
    AWS,
    "sh", "-c", f"mysql -uroot -p{MYSQL_PASSWORD} prod && redis-cli -a {REDIS_PASSWORD} ping",
]


def leaked(text: str) -> list[str]:
    """The planted values that appear in ``text``."""
    return [value for value in ALL if value in text]
