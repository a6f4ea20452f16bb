"""Secrets at rest: Fernet tokens under a key derived from SECRET_KEY, masked for display."""

import pytest

from common.secrets import MASK, SecretUnreadable, decrypt, encrypt, mask

KEY = "k" * 48


def test_round_trip_and_the_token_reveals_nothing():
    token = encrypt("sg.api-key-1234567890", KEY)
    assert "api-key" not in token
    assert decrypt(token, KEY) == "sg.api-key-1234567890"
    assert encrypt("same", KEY) != encrypt("same", KEY)  # random IV each time


def test_another_secret_key_or_a_damaged_token_cannot_decrypt():
    token = encrypt("password", KEY)
    with pytest.raises(SecretUnreadable):
        decrypt(token, "another-key-" + "x" * 40)
    with pytest.raises(SecretUnreadable):
        decrypt(token[:-4] + "AAAA", KEY)


def test_mask_shows_at_most_the_last_four_characters_of_long_secrets():
    assert mask("") == ""
    assert mask("short-pass") == MASK
    assert mask("a-much-longer-api-key-WXYZ") == MASK + "WXYZ"
