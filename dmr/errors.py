"""Errors a user can fix (a config value, a missing file, a changed config), told in one line.

`dmr.main` prints a UserError as `error: <message>` and exits with status 2, without a traceback;
any other exception is an internal error and keeps its traceback.
"""
from __future__ import annotations

import difflib
import errno
import re
from typing import Iterable, Iterator

EXIT_STATUS = 2
# Write failures the user fixes (free space, permissions), not bugs.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


class UserError(ValueError):
  """Bad input or state the user can fix; the message says what is wrong and what to do."""


def close_matches(word: str, candidates: Iterable[str]) -> str:
  """' Did you mean: a, b?' for the candidates close to `word` ('' when none is)."""
  matches = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
  return f" Did you mean: {', '.join(matches)}?" if matches else ""


def write_failure(error: OSError) -> UserError | None:
  """The UserError for a failed write (disk full, read-only or not permitted), else None."""
  if error.errno not in WRITE_ERRNOS:
    return None
  where = f" {error.filename}" if error.filename else ""
  return UserError(
      f"cannot write{where}: {error.strerror}. Free disk space or fix the permissions (or choose "
      f"another --workdir), then rerun the same command: results.json and the last complete "
      f"checkpoint of every model are intact.")


def suggest_names(value, allowed: str) -> str:
  """Close matches, among the quoted names in the text `allowed`, of the names in `value` (a
  string or a sequence of strings) that are not among them: ' Did you mean: ...?' or ''."""
  names = set(re.findall(r"'([^']+)'", allowed))
  given = [value] if isinstance(value, str) else list(value) if isinstance(value, (tuple, list)) \
      else []
  return "".join(close_matches(v, names) for v in given if isinstance(v, str) and v not in names)


def chain(error: BaseException | None) -> Iterator[BaseException]:
  """`error`, then its cause (or context), that one's, and so on."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def user_error_of(error: BaseException) -> UserError | None:
  """The UserError behind `error` (itself or a cause, e.g. a failed write wrapped by a library),
  None for an internal error."""
  for e in chain(error):
    if isinstance(e, UserError):
      return e
    if isinstance(e, OSError) and (failure := write_failure(e)) is not None:
      return failure
  return None
