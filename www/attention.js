// Getting attention when the tab is hidden, and telling screen readers what happens.
//
// Both are pure: they watch snapshots of the room (who talks, our floor, the members) and
// return what to do, for notify.js to perform.
// - `Attention`: when someone else starts talking while the tab is hidden, a short tone and
//   the title "● Ann is talking — walkie", so the tab strip and the taskbar show it; the
//   title comes back when they stop or when the tab is visible again.
// - `Announcer`: the sentences for the page's polite live region: the talker, our floor
//   (granted, queued, denied, revoked, ended), members joining and leaving. Only changes are
//   said, once; many members at once are summed up; the talk countdown is never announced.

/**
 * @typedef {{id: string, name: string}} Person
 * @typedef {{hidden: boolean, youId: ?string, talker: ?Person}} AttentionSnapshot
 * @typedef {{youId: ?string, members: Person[], talker: ?Person,
 *            floor: {state: string, position: number, reason: string, busyHolder: ?Person}}} RoomSnapshot
 */

/** Someone other than us holds the floor: that person, else null. */
function otherTalker(talker, youId) {
  return talker && talker.id !== youId ? talker : null;
}

export class Attention {
  /** @param {string} baseTitle the page's own title, shown whenever nobody needs attention */
  constructor(baseTitle) {
    this.baseTitle = baseTitle;
    this.title = baseTitle;
    this._talkerId = null;
  }

  /**
   * @param {AttentionSnapshot} snap
   * @returns {Array<{type: "title", text: string} | {type: "tone", name: "attention"}>}
   */
  observe({ hidden, youId, talker }) {
    const other = otherTalker(talker, youId);
    const started = other !== null && other.id !== this._talkerId;
    this._talkerId = other ? other.id : null;
    const actions = [];
    const title = hidden && other ? `● ${other.name} is talking — walkie` : this.baseTitle;
    if (title !== this.title) {
      this.title = title;
      actions.push({ type: "title", text: title });
    }
    if (hidden && started) actions.push({ type: "tone", name: "attention" });
    return actions;
  }
}

const REVOKED = {
  max_talk_time: "Your turn ended: time is up.",
  no_media: "Your turn ended: your audio stopped reaching the room.",
  lost: "You lost the floor.",
};

/** "Bo", "Bo and Cy", "Bo, Cy and Di", or "4 people" past three. */
function names(people) {
  if (people.length > 3) return `${people.length} people`;
  const list = people.map((p) => p.name);
  return list.length === 1 ? list[0] : `${list.slice(0, -1).join(", ")} and ${list[list.length - 1]}`;
}

export class Announcer {
  constructor() {
    this._youId = null;
    this._members = new Map();
    this._talker = null;
    this._floor = "idle";
    this._position = 0;
  }

  /** @param {RoomSnapshot} snap @returns {string[]} the sentences to announce, in order */
  observe({ youId, members, talker, floor }) {
    const said = [];
    const current = new Map(members.map((m) => [m.id, m]));
    if (youId !== this._youId) {
      if (youId !== null) said.push(this._arrived(current, youId));
    } else if (youId !== null) {
      const joined = [...current.values()].filter((m) => !this._members.has(m.id));
      const left = [...this._members.values()].filter((m) => !current.has(m.id));
      if (joined.length) said.push(`${names(joined)} joined.`);
      if (left.length) said.push(`${names(left)} left.`);
    }
    if (youId !== null) said.push(...this._floorNews(floor, talker));
    const before = otherTalker(this._talker, this._youId);
    const now = otherTalker(talker, youId);
    if (now && (!before || before.id !== now.id)) said.push(`${now.name} is talking.`);
    else if (!now && before && youId !== null) said.push("Channel clear.");

    this._youId = youId;
    this._members = current;
    this._talker = talker;
    this._floor = floor.state;
    this._position = floor.position;
    return said;
  }

  _arrived(current, youId) {
    const others = [...current.values()].filter((m) => m.id !== youId);
    return others.length ? `You are in the room with ${names(others)}.` : "You are in the room. Nobody else is here yet.";
  }

  _floorNews(floor, talker) {
    const changed = floor.state !== this._floor;
    switch (floor.state) {
      case "talking":
        return changed ? ["You are on air."] : [];
      case "queued":
        return changed || floor.position !== this._position ? [`You are number ${floor.position} in line.`] : [];
      case "busy": {
        if (!changed) return [];
        if (floor.reason === "rate_limited") return ["Too many presses. Wait a moment."];
        const who = (floor.busyHolder && floor.busyHolder.name) || (talker && talker.name);
        return [who ? `Busy: ${who} is talking.` : "Busy: someone else is talking."];
      }
      case "revoked":
        return changed ? [REVOKED[floor.reason] || "Your turn was ended."] : [];
      case "idle":
        return this._floor === "talking" ? ["You are off air."] : [];
      default:
        return [];
    }
  }
}
