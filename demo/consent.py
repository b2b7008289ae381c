"""Which file a consent box was ticked for: recorded in the page, checked by the render.

Each upload field has a box that says "I have the right to use this file". The page keeps, per field, the
file the field shows and the file the tick was given for, in one place in the browser (``window.lpConsent``)
where the visitor's actions happen in the order they made them. A record kept on the server was written by
requests answered in no set order, and Gradio hands an event's handler the values it had when it was
triggered, held back while a file uploads; both let a tick given for one file count for another.

The page's state per field: ``shown`` (the file in the field, '' when empty), ``ticked`` and ``tick``:
the file the tick was given for, EMPTY_FIELD for a tick given on the empty field (the file that arrives
next takes it), PENDING while the page has not yet seen which file the box was ticked beside (a tick
given while a file uploads is that file's), '' when unticked. Every event hands the state to two hidden
fields that the render reads with the box.
"""
from __future__ import annotations

EMPTY_FIELD = "(empty field)"
PENDING = "(pending)"

# One state per page, made by whichever event comes first (page.js need not have run).
_STATE = f"""window.lpConsent = window.lpConsent || (() => {{
  const EMPTY = {EMPTY_FIELD!r}, PENDING = {PENDING!r};
  const fields = {{portrait: {{shown: '', ticked: false, tick: ''}}, clip: {{shown: '', ticked: false, tick: ''}}}};
  const path = (v) => (v && (v.video ? v.video.path : v.path)) || '';
  const out = (s) => [s.tick, s.shown];
  return {{
    // The box changed: at once, before Gradio lets an upload in progress hold anything back.
    box(which, ticked) {{
      const s = fields[which];
      s.ticked = ticked;
      s.tick = ticked ? PENDING : '';
      return out(s);
    }},
    // The same change, with the field's file: held back by Gradio until a file arriving is in.
    beside(which, value) {{
      const s = fields[which];
      if (s.ticked && s.tick === PENDING) s.tick = path(value) || EMPTY;
      return out(s);
    }},
    // A file is in the field: a tick given on the empty field is its; one given for another file is not.
    arrived(which, value) {{
      const s = fields[which], file = path(value);
      s.shown = file;
      if (s.tick === EMPTY) s.tick = file;
      else if (s.tick && s.tick !== PENDING && s.tick !== file) {{ s.ticked = false; s.tick = ''; }}
      return [s.ticked, ...out(s)];
    }},
    cleared(which) {{
      Object.assign(fields[which], {{shown: '', ticked: false, tick: ''}});
      return [false, '', ''];
    }},
  }};
}})();"""


def _js(call: str, args: str) -> str:
    return f"({args}) => {{ {_STATE} return window.lpConsent.{call}; }}"


def box_js(which: str) -> str:
    """For the box's change (inputs: the box; outputs: the tick's record, the file shown)."""
    return _js(f"box({which!r}, ticked)", "ticked")


def beside_js(which: str) -> str:
    """For the box's change with the field (inputs: the box, the field; outputs as box_js)."""
    return _js(f"beside({which!r}, value)", "ticked, value")


def arrived_js(which: str) -> str:
    """For a file's arrival (inputs: the field; outputs: the box, the tick's record, the file shown)."""
    return _js(f"arrived({which!r}, value)", "value")


def cleared_js(which: str) -> str:
    """For the field emptied by the visitor (no inputs; outputs as arrived_js)."""
    return _js(f"cleared({which!r})", "")


def given_for(ticked: bool, tick: str | None, shown: str | None, file: str | None) -> bool:
    """Whether an upload may be used: its box ticked, the file the render would use the one the page shows,
    and the tick given for that very file (the page's records, see the module's text)."""
    return bool(ticked and file and str(file) == shown == tick)
