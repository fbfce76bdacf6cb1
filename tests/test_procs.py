"""smsapp.testing.procs: what an integration test that stalls can say about its real processes."""

from __future__ import annotations

import sys
import textwrap

from smsapp.testing import procs

# A parent that forks a child (as a prefork worker does) and both wait in functions of their own.
PARENT = textwrap.dedent(
    """
    import os, sys, time

    def the_child_waits_here():
        time.sleep(60)

    def the_parent_waits_here():
        time.sleep(60)

    if os.fork() == 0:
        print("child ready", flush=True)
        the_child_waits_here()
        os._exit(0)
    print("parent ready", flush=True)
    the_parent_waits_here()
    """
)


def test_stacks_shows_what_a_process_and_its_children_wait_on() -> None:
    proc = procs.Proc("stacks", [sys.executable, "-c", PARENT], env={})
    try:
        proc.wait_for_output("child ready", timeout=30)
        proc.wait_for_output("parent ready", timeout=30)
        stacks = proc.stacks()
        assert "the_parent_waits_here" in stacks, stacks
        assert "the_child_waits_here" in stacks, stacks
    finally:
        proc.kill()
    assert proc.stacks() == ""  # a process that is gone has no stacks to show
