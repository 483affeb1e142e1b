"""The constant a login with an unknown e-mail is verified against (textbook.core.security)."""

from argon2 import PasswordHasher

from textbook.core import security


def test_the_timing_equaliser_hash_has_the_hasher_s_current_parameters() -> None:
    # Same parameters as a real user's hash (the module hashes with PasswordHasher()'s defaults;
    # the backend tests swap in cheap ones), so an unknown e-mail costs the same time; a library
    # upgrade that changes the defaults fails here (make a new constant then).
    production = PasswordHasher()
    assert not production.check_needs_rehash(security._DUMMY_HASH)
    assert production.verify(security._DUMMY_HASH, "timing-equaliser-not-a-password")


def test_an_unknown_user_never_verifies() -> None:
    assert security.verify_password("timing-equaliser-not-a-password", None) is False
    assert security.verify_password("anything", None) is False
