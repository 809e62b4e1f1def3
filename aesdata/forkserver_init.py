"""Imported by multiprocessing's fork server, and only there: :func:`aesdata.childenv.clean_pool_context`
names it first in the server's preload list, so the server dies with the process that started it.

Without it a SIGKILLed caller would leave the server and its workers running for ever: each worker holds
the server's liveness pipe and the write end of its own task queue, so neither side ever sees an end of
file. With it the kernel kills the server, and each worker (:func:`~aesdata.childenv.die_with_parent`)
dies with the server.
"""

from aesdata.childenv import die_with_parent

die_with_parent()
