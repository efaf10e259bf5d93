"""`omldeploy completion bash|zsh`: shell completion scripts, and the local backup-id cache they read.

The scripts are generated from the real parser tree, so a new verb or option is completed without
anyone touching this file. Everything dynamic is read from local files by the shell itself — no
Python start-up and no SSH on TAB:

- tenant names: folders holding inventory.yml under the instances root (`--instances DIR` typed on the
  line wins, then $OMLDEPLOY_INSTANCES, then ./instances — the same order as the CLI);
- backup ids (`restore --ts`, `backups verify --ts`): `instances/<t>/.omldeploy/backup-ids`, written by
  `omldeploy backups list`, plus the successful `backup` records the ledger gained since that listing.
  The cache holds ids only (0600, never a secret); it records how many ledger lines it already covers so
  the ledger is read from there on.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omldeploy.backup import layout
from omldeploy.state import ledger

CACHE_NAME = "backup-ids"
SHELLS = ("bash", "zsh")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("completion", help="print a bash or zsh completion script (see docs/cli.md)",
                       description="Print a completion script. bash: `source <(omldeploy completion bash)` "
                                   "in ~/.bashrc; zsh: `source <(omldeploy completion zsh)` after compinit, "
                                   "or save it as _omldeploy in a folder of $fpath.")
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(func=cmd_completion)


def cmd_completion(args: argparse.Namespace) -> int:
    from omldeploy.cli.parser import build_parser

    print(script(str(args.shell), build_parser()), end="")
    return 0


# ----------------------------------------------------------------------------- backup id cache

def cache_path(folder: Path) -> Path:
    return folder / ".omldeploy" / CACHE_NAME


def remember_backup_ids(folder: Path, ids: Iterable[str]) -> None:
    """Write the ids a listing just saw, for completion. Best effort: a cache must never fail a verb."""
    path = cache_path(folder)
    valid = [i for i in ids if layout.valid_id(i)]
    led = ledger.ledger_path(folder)
    try:
        covered = sum(1 for _ in led.open("rb")) if led.exists() else 0
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{CACHE_NAME}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"# backup ids seen by `omldeploy backups list`, for shell completion; "
                     f"ledger-lines={covered}\n")
            fh.writelines(f"{i}\n" for i in valid)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError:
        return


# ----------------------------------------------------------------------------- the parser tree as tables

def _value_kind(action: argparse.Action) -> str:
    """What completes the value of an option: @tenant, @backup, @dir, a word list, or nothing."""
    if action.dest == "tenant":
        return "@tenant"
    if action.dest == "ts":
        return "@backup"
    if action.dest in ("instances", "out"):
        return "@dir"
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return " ".join(str(c) for c in action.choices)
    return "@none"


def tables(parser: argparse.ArgumentParser) -> dict[str, dict[str, str]]:
    """subs / opts / vals / pos, keyed by the verb path ("omldeploy backups list")."""
    out: dict[str, dict[str, str]] = {"subs": {}, "opts": {}, "vals": {}, "pos": {}}

    def walk(p: argparse.ArgumentParser, path: str) -> None:
        opts: list[str] = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                out["subs"][path] = " ".join(action.choices)
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif action.option_strings:
                opts += action.option_strings
                if action.nargs != 0:
                    for flag in action.option_strings:
                        out["vals"][f"{path} {flag}"] = _value_kind(action)
            elif action.choices is not None and path not in out["pos"]:
                out["pos"][path] = _value_kind(action)
        out["opts"][path] = " ".join(sorted(opts, key=lambda o: (o.startswith("--"), o)))

    walk(parser, "omldeploy")
    return out


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    data = tables(parser)
    if shell == "bash":
        decls = "\n".join(f"declare -gA _omldeploy_{name}=(\n"
                          + "".join(f"  [{shlex.quote(k)}]={shlex.quote(v)}\n" for k, v in sorted(table.items()))
                          + ")" for name, table in data.items())
        return BASH.replace("@@TABLES@@", decls)
    decls = "\n".join(f"typeset -gA _omldeploy_{name}\n_omldeploy_{name}=(\n"
                      + "".join(f"  {shlex.quote(k)} {shlex.quote(v)}\n" for k, v in sorted(table.items()))
                      + ")" for name, table in data.items())
    return ZSH.replace("@@TABLES@@", decls)


BASH = r"""# bash completion for omldeploy (generated by `omldeploy completion bash`; regenerate after an upgrade)
# Install: source <(omldeploy completion bash)   e.g. in ~/.bashrc
@@TABLES@@

_omldeploy_backup_ids() {
  local dir="$1/$2/.omldeploy" skip=0 line
  if [[ -f "$dir/backup-ids" ]]; then
    while IFS= read -r line; do
      case $line in
        '#'*ledger-lines=*) skip=${line##*ledger-lines=} ;;
        '#'*|'') ;;
        *) printf '%s\n' "$line" ;;
      esac
    done < "$dir/backup-ids"
  fi
  [[ $skip =~ ^[0-9]+$ ]] || skip=0
  if [[ -f "$dir/ledger.jsonl" ]]; then
    tail -n "+$((skip + 1))" "$dir/ledger.jsonl" 2>/dev/null | sed -n \
      's/^{"action": "backup",.*"extra": {[^}]*"id": "\([A-Za-z0-9._-]*\)".*"outcome": "ok".*/\1/p'
  fi
}

_omldeploy_tenants() {
  local d
  for d in "$1"/*/; do
    [[ -f "${d}inventory.yml" ]] || continue
    d=${d%/}
    printf '%s\n' "${d##*/}"
  done
}

# The value typed after OPTION (last one wins, as in the CLI): `--opt V`, `--opt=V` or bash's `--opt = V`.
_omldeploy_option_value() {
  local i w value=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    if [[ $w == "$1" || ( -n $2 && $w == "$2" ) ]]; then
      if [[ ${COMP_WORDS[i+1]} == "=" ]]; then value=${COMP_WORDS[i+2]}; else value=${COMP_WORDS[i+1]}; fi
    elif [[ $w == "$1="* ]]; then
      value=${w#*=}
    fi
  done
  printf '%s' "$value"
}

_omldeploy() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev="" verbs=omldeploy i w npos=0 kind root
  (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}
  # bash splits `--tenant=ac` at '=': complete the value of the option before it
  if [[ $cur == "=" ]]; then
    cur=""
  elif [[ $prev == "=" && COMP_CWORD -gt 1 ]]; then
    prev=${COMP_WORDS[COMP_CWORD-2]}
  fi
  if [[ $cur == --*=* ]]; then prev=${cur%%=*}; cur=${cur#*=}; fi
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    if [[ $w == -* ]]; then
      [[ $w == *=* ]] && continue
      if [[ -n ${_omldeploy_vals["$verbs $w"]+x} ]]; then
        i=$((i + 1))
        [[ ${COMP_WORDS[i]} == "=" ]] && i=$((i + 1))
      fi
      continue
    fi
    [[ $w == "=" ]] && continue
    if [[ " ${_omldeploy_subs[$verbs]} " == *" $w "* ]]; then verbs="$verbs $w"; else npos=$((npos + 1)); fi
  done
  COMPREPLY=()
  if [[ -n ${_omldeploy_vals["$verbs $prev"]+x} ]]; then
    kind=${_omldeploy_vals["$verbs $prev"]}
    root=$(_omldeploy_option_value --instances)
    root=${root:-${OMLDEPLOY_INSTANCES:-instances}}
    root=${root/#\~/$HOME}
    case $kind in
      @tenant) mapfile -t COMPREPLY < <(compgen -W "$(_omldeploy_tenants "$root")" -- "$cur") ;;
      @backup)
        local tenant
        tenant=$(_omldeploy_option_value --tenant -t)
        [[ -n $tenant ]] &&
          mapfile -t COMPREPLY < <(compgen -W "$(_omldeploy_backup_ids "$root" "$tenant")" -- "$cur") ;;
      @dir) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
      @none) ;;
      *) mapfile -t COMPREPLY < <(compgen -W "$kind" -- "$cur") ;;
    esac
    return 0
  fi
  if [[ $cur != -* && -n ${_omldeploy_subs[$verbs]+x} ]]; then
    mapfile -t COMPREPLY < <(compgen -W "${_omldeploy_subs[$verbs]}" -- "$cur")
  elif [[ $cur != -* && -n ${_omldeploy_pos[$verbs]+x} && $npos -eq 0 ]]; then
    mapfile -t COMPREPLY < <(compgen -W "${_omldeploy_pos[$verbs]}" -- "$cur")
  else
    mapfile -t COMPREPLY < <(compgen -W "${_omldeploy_opts[$verbs]}" -- "$cur")
  fi
  return 0
}

complete -F _omldeploy omldeploy
"""

ZSH = r"""#compdef omldeploy
# zsh completion for omldeploy (generated by `omldeploy completion zsh`; regenerate after an upgrade)
# Install: `source <(omldeploy completion zsh)` after compinit, or save as _omldeploy in a folder of $fpath.
@@TABLES@@

_omldeploy_backup_ids() {
  local dir="$1/$2/.omldeploy" skip=0 line
  if [[ -f "$dir/backup-ids" ]]; then
    while IFS= read -r line; do
      case $line in
        ('#'*ledger-lines=*) skip=${line##*ledger-lines=} ;;
        ('#'*|'') ;;
        (*) print -r -- "$line" ;;
      esac
    done < "$dir/backup-ids"
  fi
  [[ $skip == <-> ]] || skip=0
  if [[ -f "$dir/ledger.jsonl" ]]; then
    tail -n "+$((skip + 1))" "$dir/ledger.jsonl" 2>/dev/null | sed -n \
      's/^{"action": "backup",.*"extra": {[^}]*"id": "\([A-Za-z0-9._-]*\)".*"outcome": "ok".*/\1/p'
  fi
}

_omldeploy_tenants() {
  local d
  for d in "$1"/*(N/); do
    [[ -f "$d/inventory.yml" ]] && print -r -- "${d:t}"
  done
}

# The value typed after OPTION (last one wins, as in the CLI): `--opt V` or `--opt=V`.
_omldeploy_option_value() {
  local i w value=""
  for (( i = 2; i < CURRENT; i++ )); do
    w=${words[i]}
    if [[ $w == "$1" || ( -n $2 && $w == "$2" ) ]]; then
      value=${words[i+1]}
    elif [[ $w == "$1="* ]]; then
      value=${w#*=}
    fi
  done
  print -r -- "$value"
}

_omldeploy() {
  local cur=${words[CURRENT]} prev=${words[CURRENT-1]} verbs=omldeploy i w npos=0 kind root key tenant
  local -a cands
  if [[ $cur == --*=* ]]; then
    prev=${cur%%=*}
    compset -P '*='
    cur=${cur#*=}
  fi
  for (( i = 2; i < CURRENT; i++ )); do
    w=${words[i]}
    if [[ $w == -* ]]; then
      [[ $w == *=* ]] && continue
      key="$verbs $w"
      (( ${+_omldeploy_vals[$key]} )) && (( i++ ))
      continue
    fi
    if [[ " ${_omldeploy_subs[$verbs]} " == *" $w "* ]]; then verbs="$verbs $w"; else (( npos++ )); fi
  done
  key="$verbs $prev"
  if (( ${+_omldeploy_vals[$key]} )); then
    kind=${_omldeploy_vals[$key]}
    root=$(_omldeploy_option_value --instances)
    root=${root:-${OMLDEPLOY_INSTANCES:-instances}}
    root=${root/#\~/$HOME}
    case $kind in
      (@tenant) cands=(${(f)"$(_omldeploy_tenants "$root")"}) ;;
      (@backup)
        tenant=$(_omldeploy_option_value --tenant -t)
        [[ -n $tenant ]] && cands=(${(f)"$(_omldeploy_backup_ids "$root" "$tenant")"}) ;;
      (@dir) _files -/; return ;;
      (@none) return 1 ;;
      (*) cands=(${=kind}) ;;
    esac
  elif [[ $cur != -* ]] && (( ${+_omldeploy_subs[$verbs]} )); then
    cands=(${=_omldeploy_subs[$verbs]})
  elif [[ $cur != -* ]] && (( ${+_omldeploy_pos[$verbs]} )) && (( npos == 0 )); then
    cands=(${=_omldeploy_pos[$verbs]})
  else
    cands=(${=_omldeploy_opts[$verbs]})
  fi
  (( ${#cands} )) && compadd -- "${cands[@]}"
}

if [[ ${funcstack[1]-} == _omldeploy ]]; then
  _omldeploy "$@"
else
  (( ${+functions[compdef]} )) && compdef _omldeploy omldeploy
fi
"""
