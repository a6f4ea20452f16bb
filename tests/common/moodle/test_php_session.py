"""The PHP session reader: USER->id out of what Moodle and phpredis write, and nothing else —
every other input is UnreadableSession (never another exception, never an object built)."""

import gzip
import random

import pytest

from common.moodle.demo.sessions import php_serialize, session_data
from common.moodle.php_session import (
    MAX_SESSION_BYTES,
    UnreadableSession,
    php_scalar,
    php_string,
    session_user_id,
    unwrap_store_value,
)

# A session as Moodle 4.x writes it for a signed-in learner: USER with protected and private
# property names (NUL-mangled), nested objects and arrays, floats, booleans, references, a
# custom-serialized object, then SESSION.
MOODLE_SESSION = (
    b'USER|O:8:"stdClass":9:{s:2:"id";s:3:"123";s:4:"auth";s:6:"manual";'
    b's:10:"preference";a:2:{s:18:"email_bounce_count";s:1:"1";s:11:"_lastloaded";i:1795000000;}'
    b's:7:"profile";a:0:{}s:6:"access";a:2:{s:2:"ra";a:1:{s:2:"/1";a:1:{i:7;i:7;}}s:4:"time";'
    b'i:1795000000;}s:12:"\x00*\x00protected";d:1.5;s:12:"\x00Foo\x00private";b:1;'
    b's:4:"self";r:1;s:3:"obj";C:11:"ArrayObject":21:{x:i:0;a:0:{};m:a:0:{}}}'
    b'SESSION|O:8:"stdClass":2:{s:4:"lang";s:2:"en";s:9:"fromdiscussion";N;}'
)


def test_reads_user_id_from_a_moodle_session_and_its_redis_wrappings():
    assert session_user_id(MOODLE_SESSION) == 123
    wrapped = php_serialize(MOODLE_SESSION)  # phpredis's SERIALIZER_PHP
    assert session_user_id(unwrap_store_value(wrapped)) == 123
    compressed = php_serialize(gzip.compress(MOODLE_SESSION))  # session_redis_compressor=gzip
    assert session_user_id(unwrap_store_value(compressed)) == 123
    assert session_user_id(unwrap_store_value(MOODLE_SESSION)) == 123  # no serializer
    assert session_user_id(session_data(0)) == 0  # not logged in
    assert session_user_id(b'USER|O:8:"stdClass":1:{s:2:"id";i:77;}') == 77
    # session.serialize_handler = php_serialize: one array
    assert (
        session_user_id(b'a:2:{s:7:"SESSION";a:0:{}s:4:"USER";O:8:"stdClass":1:{s:2:"id";i:9;}}')
        == 9
    )


def test_hash_fields_as_phpredis_stores_them():
    assert php_scalar(b"i:42;") == 42
    assert php_scalar(b's:2:"42";') == "42"
    assert php_scalar(b"N;") is None
    assert php_scalar(b"42") == "42"  # phpredis without a serializer
    assert php_string(b's:3:"abc";') == b"abc"
    for bad in (b"a:0:{}", b"i:4", b's:5:"abc";', b"x" * 100, b'O:8:"stdClass":0:{}'):
        with pytest.raises(UnreadableSession):
            php_scalar(bad)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"SESSION|a:0:{}",  # no USER
        b'USER|O:9:"Exploiter":1:{s:2:"id";i:1;}',  # not a stdClass: never trusted
        b'USER|a:1:{s:2:"id";i:1;}',  # an array, not the object Moodle writes
        b'USER|O:8:"stdClass":1:{s:2:"id";b:1;}',
        b'USER|O:8:"stdClass":1:{s:2:"id";i:-5;}',
        b'USER|O:8:"stdClass":1:{s:2:"id";d:5.0;}',
        b'USER|O:8:"stdClass":1:{s:2:"id";s:3:"5x5";}',
        b'USER|O:8:"stdClass":1:{s:4:"name";s:1:"x";}',  # no id
        b'USER|O:8:"stdClass":1:{s:2:"id";s:99:"12";}',  # length past the end
        b'USER|O:8:"stdClass":1:{s:2:"id";s:2:"12"',  # cut short
        b'USER|O:8:"stdClass":99999999:{}',  # element count bomb
        b"USER|" + b"a:1:{i:0;" * 100 + b"N;" + b"}" * 100,  # nesting bomb before USER ends
        b"FOO|" + b"a:1:{i:0;" * 100 + b"N;" + b"}" * 100 + MOODLE_SESSION,
        b"../etc|" + MOODLE_SESSION,
        b'USER|O:8:"stdClass":1:{s:2:"id";i:99999999999999999999999;}',
    ],
)
def test_anything_else_is_unreadable(data):
    with pytest.raises(UnreadableSession):
        session_user_id(data)


def test_oversized_and_bad_compressed_data_is_refused():
    with pytest.raises(UnreadableSession):
        unwrap_store_value(b"x" * (MAX_SESSION_BYTES + 1))
    bomb = gzip.compress(b"USER|" + b"N;" * MAX_SESSION_BYTES)  # ~2 MB once inflated
    with pytest.raises(UnreadableSession):
        unwrap_store_value(php_serialize(bomb))
    with pytest.raises(UnreadableSession):
        unwrap_store_value(php_serialize(b"\x1f\x8bnot gzip at all"))


def test_mangled_input_only_ever_raises_unreadable_session():
    """Random damage to a real session: the reader answers a user id or refuses, nothing else."""
    rng = random.Random(5)
    for _ in range(3000):
        data = bytearray(MOODLE_SESSION)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.4:
                data[at] = rng.randrange(256)
            elif choice < 0.7:
                del data[at : at + rng.randint(1, 8)]
            else:
                data[at:at] = bytes(rng.choice(b'0123456789:;{}"sidaONbrCR|') for _ in range(3))
        try:
            user = session_user_id(bytes(data))
        except UnreadableSession:
            continue
        assert isinstance(user, int) and user >= 0
