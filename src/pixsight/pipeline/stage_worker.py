"""Worker process for :class:`~pixsight.pipeline.process_stage.ProcessStage`.

Protocol (pickle over stdin/stdout, one request then one reply):
``("init", module, spec_dict, config, tasks)`` -> ``("ok", StageInfo)``;
``("run", [LoadedImage, ...])`` -> ``("ok", [outputs])``; errors -> ``("error", (type, message))``.
EOF on stdin ends the worker. Anything a library prints goes to stderr, never into the
protocol stream.
"""

from __future__ import annotations

import importlib
import os
import pickle
import sys
from typing import Any


def _serve(inp: Any, out: Any) -> None:
    from ..models.spec import ModelSpec
    from .process_stage import portable

    stage = None
    while True:
        try:
            message = pickle.load(inp)
        except EOFError:
            break
        kind = message[0]
        try:
            if kind == "init":
                _, module_name, spec, config, tasks = message
                stage = importlib.import_module(module_name).create_stage(ModelSpec.from_dict(spec), config, tasks)
                reply: tuple[str, Any] = ("ok", stage.info)
            elif kind == "run" and stage is not None:
                reply = ("ok", [portable(o) for o in stage.run(message[1])])
            else:
                reply = ("error", ("StageWorkerError", f"unexpected request {kind!r}"))
        except Exception as err:  # noqa: BLE001 - reported to the parent, which decides
            name = getattr(err, "type", None) if hasattr(err, "to_dict") else None
            reply = ("error", (name or type(err).__name__, str(err) or type(err).__name__))
        pickle.dump(reply, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()
    if stage is not None:
        stage.close()


def main() -> None:
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints cannot corrupt the protocol
    _serve(sys.stdin.buffer, protocol_out)


if __name__ == "__main__":
    main()
