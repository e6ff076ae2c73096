// Say-again's part of the room page: the "this room keeps audio" line, the list of kept
// transmissions with a play button each, and the "Replaying Ann, 12:03" line with Stop.
// State comes from replay.js; every name goes in through textContent.

import { describeItem, describeKeeping, describePlaying } from "./replay.js";

const $ = (id) => document.getElementById(id);

const els = {
  card: $("replay-card"),
  keeps: $("replay-keeps"),
  list: $("replay-list"),
  empty: $("replay-empty"),
  note: $("replay-note"),
  now: $("replay-now"),
  nowText: $("replay-now-text"),
  stop: $("replay-stop"),
};

/**
 * Call `onPlay(id)` for a play button and `onStop()` for Stop (clicks, Enter and Space:
 * they are buttons).
 */
export function bindReplay(onPlay, onStop) {
  els.list.addEventListener("click", (e) => {
    const button = e.target instanceof Element ? e.target.closest("button[data-id]") : null;
    if (button && !button.disabled) onPlay(button.dataset.id);
  });
  els.stop.addEventListener("click", () => onStop());
}

/**
 * Draw say-again. `state`: a SayAgain; `canPlay`: audio is up and nobody talks live (a
 * request now would be refused: the buttons say so by being disabled).
 */
export function renderReplay(state, canPlay) {
  els.card.hidden = !state.keeps;
  document.body.dataset.replay = state.playing ? "playing" : state.keeps ? "kept" : "off";
  const now = describePlaying(state.playing);
  els.now.hidden = !now;
  els.nowText.textContent = now;
  if (!state.keeps) return;
  els.keeps.textContent = describeKeeping(state.seconds);
  els.note.textContent = state.note;
  els.note.hidden = !state.note;
  els.empty.hidden = state.items.length > 0;
  const frag = document.createDocumentFragment();
  for (const item of state.items) {
    const { text, label } = describeItem(item);
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-small replay-play";
    button.dataset.id = item.id;
    button.setAttribute("aria-label", label);
    const playing = state.playing && state.playing.id === item.id;
    if (playing) button.setAttribute("aria-current", "true");
    button.disabled = !canPlay || state.pending === item.id;
    const icon = document.createElement("span");
    icon.className = "replay-icon";
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = playing ? "■" : "▶";
    const words = document.createElement("span");
    words.textContent = text;
    button.append(icon, words);
    li.append(button);
    frag.append(li);
  }
  // Redraw only what changed, so that keyboard focus stays on the button it was on.
  const ids = state.items.map((t) => t.id).join(" ");
  if (els.list.dataset.ids !== ids) {
    els.list.replaceChildren(frag);
    els.list.dataset.ids = ids;
  } else {
    const fresh = [...frag.children];
    [...els.list.children].forEach((li, i) => {
      const old = li.firstElementChild;
      const now = fresh[i].firstElementChild;
      old.disabled = now.disabled;
      old.firstElementChild.textContent = now.firstElementChild.textContent;
      if (now.hasAttribute("aria-current")) old.setAttribute("aria-current", "true");
      else old.removeAttribute("aria-current");
    });
  }
}
