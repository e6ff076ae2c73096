// DOM side of the room page: element lookups and small render functions.
//
// Every user-supplied string (names, server messages) goes in through textContent, never as
// HTML, so a display name like "<img onerror=...>" is shown literally. State is mirrored into
// data-* attributes (body, button) so CSS and tests can read it without scraping text.

const $ = (id) => document.getElementById(id);

export const els = {
  body: document.body,
  conn: $("conn"),
  roomName: $("room-name"),
  roomLock: $("room-lock"),
  roomFull: $("room-full"),
  roomPrivacy: $("room-privacy"),
  joinPrivacy: $("join-privacy"),
  notice: $("notice"),
  noticeText: $("notice-text"),
  noticeRetry: $("notice-retry"),
  joinPanel: $("join-panel"),
  joinRoom: $("join-room"),
  joinForm: $("join-form"),
  joinName: $("join-name"),
  joinNameError: $("join-name-error"),
  joinPwBox: $("join-pw-box"),
  joinPassword: $("join-password"),
  joinPwError: $("join-pw-error"),
  joinSubmit: $("join-submit"),
  talkPanel: $("talk-panel"),
  talker: $("talker"),
  talkerLabel: $("talker-label"),
  meterBar: $("meter-bar"),
  ptt: $("ptt"),
  pttSub: $("ptt-sub"),
  selfStatus: $("self-status"),
  announcer: $("announcer"),
  talkKey: $("talk-key"),
  talkKeyChange: $("talk-key-change"),
  talkKeyStatus: $("talk-key-status"),
  latch: $("latch"),
  soundHint: $("sound-hint"),
  members: $("members"),
  memberCount: $("member-count"),
  roomLink: $("room-link"),
  copyLink: $("copy-link"),
  shareLink: $("share-link"),
  leave: $("leave"),
  remoteAudio: $("remote-audio"),
};

const CONN_TEXT = {
  idle: "Not connected",
  mic: "Microphone…",
  connecting: "Connecting…",
  ready: "Ready",
  reconnecting: "Reconnecting…",
  resetting: "Reconnecting…", // audio only (media reset): the notice says so
  failed: "Disconnected",
};

/** Connection pill; `conn` is one of CONN_TEXT's keys. */
export function renderConn(conn) {
  els.conn.textContent = CONN_TEXT[conn] || conn;
  els.conn.dataset.conn = conn;
  els.body.dataset.conn = conn;
}

/** Page mode: "join" (name form), "room" (talking UI), "failed" (only the notice matters). */
export function renderMode(mode) {
  els.body.dataset.state = mode;
  els.joinPanel.hidden = mode !== "join";
}

/** An alert line at the top; `retryLabel` shows a button whose clicks the app handles. */
export function renderNotice(text, retryLabel = "") {
  els.notice.hidden = !text;
  els.noticeText.textContent = text || "";
  els.noticeRetry.hidden = !retryLabel;
  els.noticeRetry.textContent = retryLabel || "Try again";
}

export function fieldError(el, text) {
  el.textContent = text || "";
  el.hidden = !text;
}

/**
 * The big button. `state` is the floor state or "disabled"; `sub` is its small second line;
 * the accessible name stays "Hold to Talk" / "Tap to Talk" while the status line
 * (aria-describedby) carries the state and the live region (notify.js) announces changes.
 */
export function renderPtt(state, sub, latch) {
  const enabled = state !== "disabled" && state !== "listening";
  els.ptt.hidden = state === "listening"; // a listen-only member has no Talk button at all
  els.ptt.disabled = !enabled;
  els.ptt.dataset.state = state;
  els.body.dataset.floor = state;
  els.pttSub.textContent = sub;
  els.ptt.setAttribute("aria-label", latch ? "Tap to Talk" : "Hold to Talk");
  if (latch) {
    els.ptt.setAttribute("aria-pressed", String(["requesting", "talking", "queued"].includes(state)));
  } else {
    els.ptt.removeAttribute("aria-pressed");
  }
}

/** The Talk key's name in the keyboard hint. */
export function renderTalkKey(label) {
  if (els.talkKey.textContent !== label) els.talkKey.textContent = label;
}

/** The line under the keyboard hint while the Talk key is being chosen ("" hides nothing). */
export function renderTalkKeyStatus(text) {
  els.talkKeyStatus.textContent = text;
}

export function renderSelfStatus(text) {
  if (els.selfStatus.textContent !== text) els.selfStatus.textContent = text;
}

/** Talker line: `who` is null (channel clear), {self: true}, or {name}. */
export function renderTalker(who, queueLength) {
  let text;
  if (!who) text = "Channel clear";
  else if (who.self) text = "You are talking";
  else text = `${who.name} is talking`;
  if (who && queueLength > 0) text += ` · ${queueLength} waiting`;
  els.talkerLabel.textContent = text;
  els.talker.dataset.talking = who ? (who.self ? "self" : "other") : "no";
}

/** Member list in join order; the talker and "you" are marked. */
export function renderMembers(members, youId, talkerId) {
  const frag = document.createDocumentFragment();
  for (const m of members) {
    const li = document.createElement("li");
    li.className = "member";
    li.dataset.id = m.id;
    if (m.id === talkerId) li.dataset.talking = "yes";
    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    avatar.textContent = initial(m.name);
    avatar.style.setProperty("--hue", String(hue(m.id)));
    const name = document.createElement("span");
    name.className = "member-name";
    name.textContent = m.name;
    li.append(avatar, name);
    if (m.id === youId) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = "you";
      li.append(tag);
    }
    if (m.id === talkerId) {
      const tag = document.createElement("span");
      tag.className = "tag tag-live";
      tag.textContent = "talking";
      li.append(tag);
    }
    frag.append(li);
  }
  els.members.replaceChildren(frag);
  els.memberCount.textContent = String(members.length);
}

/** First visible character (a whole emoji or accented letter), upper-cased. */
function initial(name) {
  const first = [...String(name).trim()][0] || "?";
  return first.toLocaleUpperCase();
}

/** A stable colour per member id, so avatars are told apart at a glance. */
function hue(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

/**
 * Whether the room has a password: the lock by the room's name (its accessible label says
 * "Password protected"), and the notes in the join form and the invite card.
 * `privacy` is describePrivacy's result (view.js).
 */
export function renderPrivacy(privacy) {
  els.roomLock.hidden = !privacy.lock;
  els.body.dataset.privacy = privacy.state;
  if (els.joinPrivacy.textContent !== privacy.joinNote) els.joinPrivacy.textContent = privacy.joinNote;
  els.roomPrivacy.hidden = !privacy.roomNote;
  if (els.roomPrivacy.textContent !== privacy.roomNote) els.roomPrivacy.textContent = privacy.roomNote;
}

/** Briefly change a button's label (e.g. "Copied"). */
export function flashLabel(button, text, ms = 1500) {
  const old = button.dataset.label || button.textContent;
  button.dataset.label = old;
  button.textContent = text;
  clearTimeout(button._flash);
  button._flash = setTimeout(() => {
    button.textContent = old;
  }, ms);
}
