"""console.server.auth: tokens are random, stored as salted HMACs, checked in constant time (pure)."""

from __future__ import annotations

from console.server import auth


def test_an_issued_token_parses_back_to_its_key_id() -> None:
    made = auth.issue(auth.DEVICE_PREFIX)
    presented = auth.parse(made.token)
    assert presented is not None
    assert (presented.kind, presented.key_id) == ("device", made.key_id)


def test_the_stored_hash_holds_no_part_of_the_secret() -> None:
    made = auth.issue(auth.API_PREFIX)
    secret = made.token.split(".", 1)[1]
    assert secret not in made.hash and secret[:8] not in made.hash


def test_the_presented_secret_matches_its_hash() -> None:
    made = auth.issue(auth.API_PREFIX)
    presented = auth.parse(made.token)
    assert presented is not None and auth.matches(made.salt, made.hash, presented.secret)


def test_another_secret_does_not_match() -> None:
    made = auth.issue(auth.API_PREFIX)
    assert not auth.matches(made.salt, made.hash, "not-the-secret")


def test_the_same_secret_hashes_differently_under_another_salt() -> None:
    assert auth.digest("00" * 16, "s") != auth.digest("11" * 16, "s")


def test_a_malformed_token_does_not_parse() -> None:
    for token in ("", "ard_", "ard_short.secret", "xyz_0123456789abcdef.secret", "ara_0123456789abcdef"):
        assert auth.parse(token) is None


def test_a_bearer_header_gives_its_token() -> None:
    assert auth.bearer("Bearer abc") == "abc"
    assert auth.bearer("Basic abc") is None
    assert auth.bearer(None) is None
