"""The RFC 5626 instance id survives restarts, and a state directory that cannot be
written costs a warning, not the registration."""

import logging
import os
import uuid

from appliance.instance import instance_id


def test_created_once_then_the_same(tmp_path):
    state = tmp_path / "state"
    first = instance_id(str(state))
    assert uuid.UUID(first).version == 4
    assert (state / "instance-id").read_text().strip() == first
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert instance_id(str(state)) == first


def test_a_damaged_file_is_replaced(tmp_path, caplog):
    (tmp_path / "instance-id").write_text("not a uuid\n")
    with caplog.at_level(logging.WARNING):
        value = instance_id(str(tmp_path))
    assert uuid.UUID(value)
    assert (tmp_path / "instance-id").read_text().strip() == value
    assert "unreadable instance id" in caplog.text


def test_an_unwritable_directory_still_gives_an_id_and_says_how_to_fix_it(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the directory should be
    with caplog.at_level(logging.WARNING):
        value = instance_id(os.path.join(str(blocked), "state"))
    assert uuid.UUID(value)
    assert "set agent.state_dir to a writable directory" in caplog.text
