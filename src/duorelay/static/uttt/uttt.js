// duorelay: ultimate tic-tac-toe in the browser. An ES module, no dependencies,
// no inline code (CSP-friendly). The wire contract is docs/uttt.md: a websocket
// at /uttt, JSON frames {"type", "data"}; the first frame is `login` or
// `reconnect` (the session id is kept in localStorage, so a reload restores
// the session).
//
// Stable hooks for tests (id, and data-testid where given):
//   #conn [conn]               connection status (role=status)
//   #me [me], #logout-btn [logout]
//   #error-msg [error]         server errors, refused moves (role=alert)
//   #login-panel, #login-form, #login-name, #login-pw, #login-btn [login],
//   #login-error [login-error]
//   #match-panel, #match-title [match-title], #match-info [match-info],
//   #match-status [match-status] (aria-live; data-state: your-turn |
//     their-turn | waiting | over), #match-hint [match-hint] (why a cell is
//     not playable), #end-btn [end-match] (press twice: the first press asks
//     to confirm), #close-btn [close-match] (finished match: remove it)
//   #board [board]; small board [sub-SX-SY] (class forced when the next move
//     must go there; data-result: x | o | draw); cell [cell-SX-SY-X-Y], a
//     <button> named "board SX,SY cell X,Y, empty|X|O[, last move]",
//     aria-disabled="true" unless you may play it, data-mark: 0 | 1 | 2
//   #lobby-panel, #match-list [match-list] of buttons [match-item] with
//     data-match-id (aria-current="true": the match shown), #matches-empty,
//     #random-btn [random], #challenge-form, #challenge-name,
//     #challenge-btn [challenge], #lobby-msg [lobby-msg]
//   #ladder-panel, #my-rating [my-rating], #ladder [ladder] (#ladder-body rows)
//   #friends-panel, #friend-list [friend-list] of li [friend] with data-name,
//     each with buttons [friend-challenge] and [friend-remove]; #friend-form,
//     #friend-name, #friend-add-btn [friend-add], #friends-msg [friends-msg]
// X is player_a (mark 1, moves first), O is player_b (mark 2).
// Keyboard: arrow keys move between the 81 cells (one tab stop, roving
// tabindex), Home/End to the row's ends, Enter or Space plays.

const SESSION_KEY = "duorelay.uttt.session";
const WS_URL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/uttt`;
const NAME = /^[a-z0-9_-]{3,16}$/;
const MARK = ["", "X", "O"];
const CONFIRM_MS = 5000;
const BASE_TITLE = document.title;

const $ = (id) => document.getElementById(id);

const st = {
  ws: null,
  phase: "idle", // idle (login form) | login | reconnect (awaiting the answer) | in
  online: false, // logged in and the socket is open
  pendingName: null,
  user: null,
  registered: false,
  elo: null, // the last elo_update's data
  friends: { friends: [], elos: [] },
  matches: new Map(), // id -> {id, ranked, revoke_time, match_state}
  selected: null, // match id shown
  wantNew: false, // a match was requested: show the next new match
  optimistic: null, // {id, row, col} of a move sent and not yet answered
  endArmed: null, // match id whose "give up" awaits its confirmation
  endTimer: 0,
  endSent: new Set(),
  retries: 0,
  retryTimer: 0,
  focus: { row: 4, col: 4 },
};

// ---------------------------------------------------------------- helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role") {
      node.setAttribute(key, value);
    } else node[key] = value;
  }
  node.append(...children);
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text; // no repeated live announcements
}

function message(id, text, isError = false) {
  const node = $(id);
  setText(node, text);
  node.classList.toggle("error", isError);
}

function showError(text) {
  setText($("error-msg"), text);
}

function storedSession() {
  try {
    return localStorage.getItem(SESSION_KEY);
  } catch {
    return null;
  }
}

function storeSession(id) {
  try {
    if (id) localStorage.setItem(SESSION_KEY, id);
    else localStorage.removeItem(SESSION_KEY);
  } catch {
    // storage refused (private mode): the session lasts as long as the page
  }
}

function cleanName(value) {
  return value.trim().toLowerCase();
}

// ------------------------------------------------------------- connection

function send(type, data) {
  if (!st.ws || st.ws.readyState !== WebSocket.OPEN) {
    showError("Not connected to the server: try again in a moment.");
    return false;
  }
  st.ws.send(JSON.stringify({ type, data }));
  return true;
}

function dropSocket() {
  clearTimeout(st.retryTimer);
  const ws = st.ws;
  st.ws = null;
  st.online = false;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
}

function connect(first) {
  dropSocket();
  st.phase = first.type;
  setText($("conn"), first.type === "login" ? "Connecting…" : "Restoring your session…");
  let ws;
  try {
    ws = new WebSocket(WS_URL);
  } catch (error) {
    onClosed(null, { code: 0, reason: String(error) });
    return;
  }
  st.ws = ws;
  ws.addEventListener("open", () => {
    if (st.ws === ws) ws.send(JSON.stringify(first));
  });
  ws.addEventListener("message", (event) => {
    if (st.ws === ws) onMessage(event.data);
  });
  ws.addEventListener("close", (event) => {
    if (st.ws === ws) onClosed(ws, event);
  });
}

function onClosed(ws, event) {
  st.ws = null;
  st.online = false;
  const session = storedSession();
  if (st.phase === "login") {
    // No login_response: the server is unreachable or closed the connection.
    st.phase = "idle";
    setText($("conn"), "Not connected.");
    message("login-error", `Could not log in: ${event.reason || "the server did not answer"}.`, true);
    render();
    return;
  }
  if ((st.phase === "in" || st.phase === "reconnect") && session) {
    const delay = Math.min(30, 2 ** st.retries);
    st.retries += 1;
    setText($("conn"), `Connection lost. Reconnecting in ${delay} s…`);
    st.retryTimer = setTimeout(() => connect({ type: "reconnect", data: { id: session } }), delay * 1000);
    render();
    return;
  }
  st.phase = "idle";
  setText($("conn"), "Not connected.");
  render();
}

function loggedIn(id, user, registered, sameUser) {
  st.retries = 0;
  st.phase = "in";
  st.online = true;
  storeSession(id);
  if (!sameUser) {
    st.matches.clear();
    st.selected = null;
    st.elo = null;
    st.friends = { friends: [], elos: [] };
    st.endSent.clear();
  } else {
    // The server re-sends every open match: drop ours, keep the finished ones shown.
    for (const [matchId, match] of st.matches) {
      if (!match.match_state.game_over) st.matches.delete(matchId);
    }
  }
  st.user = user;
  st.registered = registered;
  st.optimistic = null;
  setText($("conn"), `Connected as ${user}.`);
  message("login-error", "");
  showError("");
  render();
}

// --------------------------------------------------------------- messages

function onMessage(raw) {
  let frame;
  try {
    frame = JSON.parse(raw);
  } catch {
    return;
  }
  if (!frame || typeof frame !== "object") return;
  const data = frame.data && typeof frame.data === "object" ? frame.data : {};
  const handler = HANDLERS[frame.type];
  if (handler) handler(data); // unknown types are ignored, as the contract says
}

const HANDLERS = {
  login_response(data) {
    if (data.success) {
      const user = st.pendingName;
      loggedIn(data.id, user, Boolean(data.registered), user === st.user);
      $("login-pw").value = "";
      $("lobby-title").focus();
    } else {
      st.phase = "idle";
      dropSocket();
      setText($("conn"), "Not connected.");
      message("login-error", data.msg || "Login refused.", true);
      render();
      $("login-name").focus();
    }
  },

  reconnect_response(data) {
    if (data.success) {
      loggedIn(data.id || storedSession(), data.user, Boolean(data.registered), data.user === st.user);
    } else {
      storeSession(null);
      st.phase = "idle";
      st.user = null;
      dropSocket();
      setText($("conn"), "Not connected.");
      message("login-error", `Your session has ended${data.msg ? ` (${data.msg})` : ""}: please log in.`, true);
      render();
    }
  },

  elo_update(data) {
    st.elo = data;
    renderLadder();
  },

  friends_update(data) {
    st.friends = {
      friends: Array.isArray(data.friends) ? data.friends : [],
      elos: Array.isArray(data.elos) ? data.elos : [],
    };
    renderFriends();
  },

  match_update(data) {
    const ms = data.match_state;
    if (typeof data.id !== "string" || !ms || !Array.isArray(ms.complete_field)) return;
    const isNew = !st.matches.has(data.id);
    st.matches.set(data.id, { id: data.id, ranked: Boolean(data.ranked), revoke_time: data.revoke_time, match_state: ms });
    if (st.optimistic && st.optimistic.id === data.id) st.optimistic = null;
    if (ms.game_over) st.endSent.delete(data.id);
    if (st.selected === null || (isNew && st.wantNew)) {
      if (isNew && st.wantNew) st.wantNew = false;
      select(data.id, false);
    } else {
      render();
    }
  },

  match_request_response(data) {
    if (!data.success) st.wantNew = false;
    message("lobby-msg", data.msg || (data.success ? "Match requested." : "Match request refused."), !data.success);
  },

  move_response(data) {
    if (data.success) return;
    st.optimistic = null;
    showError(`Move refused: ${data.msg || "no reason given"}.`);
    render();
  },

  friend_request_response(data) {
    message("friends-msg", data.msg || (data.success ? "Friend added." : "Could not add the friend."), !data.success);
  },

  unfriend_request_response(data) {
    message("friends-msg", data.msg || (data.success ? "Friend removed." : "Could not remove the friend."), !data.success);
  },

  error(data) {
    showError(`Error: ${data.msg || "the server refused a message"}.`);
  },
};

// ------------------------------------------------------------------ rules

function opponentOf(ms) {
  return ms.player_a === st.user ? ms.player_b : ms.player_a;
}

function myMark(ms) {
  if (ms.player_a === st.user) return 1;
  if (ms.player_b === st.user) return 2;
  return 0;
}

function subResult(ms, sx, sy) {
  const row = Array.isArray(ms.global_field) ? ms.global_field[sy] : null;
  return row ? row[sx] || 0 : 0;
}

// The small boards the next move may go to: the last move's (x, y), unless
// that board is decided, then every undecided one.
function forcedBoards(ms) {
  const open = [];
  for (let sy = 0; sy < 3; sy++) {
    for (let sx = 0; sx < 3; sx++) if (subResult(ms, sx, sy) === 0) open.push(`${sx},${sy}`);
  }
  if (ms.game_over) return new Set();
  const last = ms.last_move;
  if (last && subResult(ms, Number(last.x), Number(last.y)) === 0) return new Set([`${last.x},${last.y}`]);
  return new Set(open);
}

function resultText(ms) {
  if (ms.player_won === st.user) return "You won!";
  if (ms.player_won) return `You lost: ${ms.player_won} won.`;
  if (ms.is_draw) return "Draw.";
  return "Match over.";
}

function turnWord(match) {
  const ms = match.match_state;
  if (ms.game_over) {
    if (ms.player_won === st.user) return "you won";
    if (ms.player_won) return "you lost";
    return ms.is_draw ? "draw" : "over";
  }
  return ms.active_player === st.user ? "your turn" : "their turn";
}

// ------------------------------------------------------------------ board

const cells = []; // cells[row][col], row = sub_y*3+y, col = sub_x*3+x
const subs = []; // subs[sub_y][sub_x]

function buildBoard() {
  const board = $("board");
  for (let r = 0; r < 9; r++) cells.push([]);
  for (let sy = 0; sy < 3; sy++) {
    subs.push([]);
    for (let sx = 0; sx < 3; sx++) {
      const sub = el("div", { class: "sub", role: "group", "data-testid": `sub-${sx}-${sy}`, "aria-label": `board ${sx},${sy}` });
      for (let y = 0; y < 3; y++) {
        for (let x = 0; x < 3; x++) {
          const row = sy * 3 + y;
          const col = sx * 3 + x;
          const button = el("button", {
            type: "button",
            class: "cell",
            tabIndex: -1,
            "data-testid": `cell-${sx}-${sy}-${x}-${y}`,
            "data-row": String(row),
            "data-col": String(col),
            "aria-label": `board ${sx},${sy} cell ${x},${y}, empty`,
            "aria-disabled": "true",
          });
          cells[row][col] = button;
          sub.append(button);
        }
      }
      subs[sy][sx] = sub;
      board.append(sub);
    }
  }
  board.addEventListener("click", (event) => {
    const cell = event.target.closest(".cell");
    if (cell) play(Number(cell.dataset.row), Number(cell.dataset.col));
  });
  board.addEventListener("keydown", onBoardKey);
}

function onBoardKey(event) {
  const cell = event.target.closest(".cell");
  if (!cell || event.altKey || event.ctrlKey || event.metaKey) return;
  let row = Number(cell.dataset.row);
  let col = Number(cell.dataset.col);
  switch (event.key) {
    case "ArrowUp": row = Math.max(0, row - 1); break;
    case "ArrowDown": row = Math.min(8, row + 1); break;
    case "ArrowLeft": col = Math.max(0, col - 1); break;
    case "ArrowRight": col = Math.min(8, col + 1); break;
    case "Home": col = 0; break;
    case "End": col = 8; break;
    default: return; // Enter and Space: the button's own click
  }
  event.preventDefault();
  moveFocus(row, col, true);
}

function moveFocus(row, col, focus) {
  cells[st.focus.row][st.focus.col].tabIndex = -1;
  st.focus = { row, col };
  const cell = cells[row][col];
  cell.tabIndex = 0;
  if (focus) cell.focus();
}

function cellAt(ms, row, col) {
  const o = st.optimistic;
  if (o && o.id === st.selected && o.row === row && o.col === col) return myMark(ms);
  const line = ms.complete_field[row];
  return (line && line[col]) || 0;
}

// Why the cell at (row, col) cannot be played now, or "" if it can.
function refusal(match, row, col) {
  const ms = match.match_state;
  if (ms.game_over) return "The match is over.";
  if (!st.online) return "Not connected: wait for the connection to come back.";
  if (myMark(ms) === 0) return "You do not play in this match.";
  if (st.optimistic && st.optimistic.id === match.id) return "Your move is on its way.";
  if (ms.active_player !== st.user) return `Not your turn: waiting for ${opponentOf(ms)}.`;
  if (cellAt(ms, row, col) !== 0) return "That cell is taken.";
  const sx = Math.floor(col / 3);
  const sy = Math.floor(row / 3);
  const forced = forcedBoards(ms);
  if (!forced.has(`${sx},${sy}`)) {
    return forced.size === 1
      ? `You must play in board ${[...forced][0]} (highlighted).`
      : "That board is decided: play in a highlighted board.";
  }
  return "";
}

function play(row, col) {
  const match = st.matches.get(st.selected);
  if (!match) return;
  const why = refusal(match, row, col);
  if (why) {
    setText($("match-hint"), why);
    return;
  }
  const data = { id: match.id, sub_x: Math.floor(col / 3), sub_y: Math.floor(row / 3), x: col % 3, y: row % 3 };
  if (!send("move", data)) return;
  showError("");
  setText($("match-hint"), "");
  st.optimistic = { id: match.id, row, col };
  render();
}

function renderBoard(match) {
  const ms = match.match_state;
  const forced = forcedBoards(ms);
  const last = ms.last_move;
  const mine = myMark(ms);
  const names = ["", `X (${ms.player_a})`, `O (${ms.player_b})`];
  for (let sy = 0; sy < 3; sy++) {
    for (let sx = 0; sx < 3; sx++) {
      const result = subResult(ms, sx, sy);
      const isForced = forced.has(`${sx},${sy}`);
      const sub = subs[sy][sx];
      sub.classList.toggle("forced", isForced);
      sub.dataset.result = ["", "x", "o", "draw"][result] || "";
      const decided = result === 3 ? "drawn" : result ? `won by ${names[result]}` : "";
      sub.setAttribute(
        "aria-label",
        `board ${sx},${sy}${decided ? `, ${decided}` : ""}${isForced ? ", next move here" : ""}`,
      );
      for (let y = 0; y < 3; y++) {
        for (let x = 0; x < 3; x++) {
          const row = sy * 3 + y;
          const col = sx * 3 + x;
          const cell = cells[row][col];
          const mark = cellAt(ms, row, col);
          const isLast = last && Number(last.sub_x) === sx && Number(last.sub_y) === sy && Number(last.x) === x && Number(last.y) === y;
          setText(cell, MARK[mark] || "");
          cell.dataset.mark = String(mark);
          cell.classList.toggle("last", Boolean(isLast));
          cell.classList.toggle("mine", mark !== 0 && mark === mine);
          cell.setAttribute(
            "aria-label",
            `board ${sx},${sy} cell ${x},${y}, ${MARK[mark] || "empty"}${isLast ? ", last move" : ""}`,
          );
          cell.setAttribute("aria-disabled", String(refusal(match, row, col) !== ""));
        }
      }
    }
  }
  for (let r = 0; r < 9; r++) for (let c = 0; c < 9; c++) cells[r][c].tabIndex = -1;
  cells[st.focus.row][st.focus.col].tabIndex = 0;
}

function firstPlayable(match) {
  for (let r = 0; r < 9; r++) {
    for (let c = 0; c < 9; c++) if (refusal(match, r, c) === "") return { row: r, col: c };
  }
  return { row: 4, col: 4 };
}

// ---------------------------------------------------------------- matches

function select(id, focusBoard) {
  st.selected = id;
  disarmEnd();
  setText($("match-hint"), "");
  const match = st.matches.get(id);
  if (match) {
    const { row, col } = firstPlayable(match);
    st.focus = { row, col };
  }
  render();
  if (focusBoard && match) cells[st.focus.row][st.focus.col].focus();
}

function disarmEnd() {
  clearTimeout(st.endTimer);
  st.endArmed = null;
}

function renderMatchPanel() {
  const match = st.matches.get(st.selected);
  $("match-panel").hidden = !match || st.phase === "idle";
  if (!match) return;
  const ms = match.match_state;
  const opp = opponentOf(ms);
  const mine = myMark(ms);
  setText($("match-title"), mine === 1 ? `You (X) vs ${opp} (O)` : `${opp} (X) vs you (O)`);
  const info = [mine === 1 ? "You play X and moved first." : "You play O.", match.ranked ? "Ranked." : "Unranked."];
  if (!ms.game_over && match.revoke_time) {
    info.push(`If no move is made by ${match.revoke_time} (server time), the player on turn loses.`);
  }
  setText($("match-info"), info.join(" "));

  let status;
  let state;
  if (ms.game_over) {
    status = resultText(ms);
    state = "over";
  } else if (st.optimistic && st.optimistic.id === match.id) {
    status = `Move sent. Waiting for ${opp}…`;
    state = "waiting";
  } else if (st.endSent.has(match.id)) {
    status = "Ending the match…";
    state = "waiting";
  } else if (ms.active_player === st.user) {
    const forced = forcedBoards(ms);
    status = forced.size === 1
      ? `Your turn: play in board ${[...forced][0]} (highlighted).`
      : "Your turn: play in any highlighted board.";
    state = "your-turn";
  } else {
    status = `Waiting for ${opp} to move.`;
    state = "their-turn";
  }
  if (!st.online) status += " (offline)";
  setText($("match-status"), status);
  $("match-status").dataset.state = state;

  $("end-btn").hidden = ms.game_over;
  setText($("end-btn"), st.endArmed === match.id ? "Press again to give up" : "Give up / end match");
  $("close-btn").hidden = !ms.game_over;
  renderBoard(match);
}

function renderMatchList() {
  const list = $("match-list");
  const items = [];
  let yourTurn = 0;
  for (const match of st.matches.values()) {
    const ms = match.match_state;
    const word = turnWord(match);
    if (word === "your turn") yourTurn += 1;
    const button = el(
      "button",
      { type: "button", class: "match-item", "data-testid": "match-item", "data-match-id": match.id },
      el("span", { class: "opp", text: `vs ${opponentOf(ms)}` }),
      el("span", { class: `turn ${word.replace(" ", "-")}`, text: word }),
      el("span", { class: "small", text: match.ranked ? "ranked" : "unranked" }),
    );
    if (match.id === st.selected) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => select(match.id, true));
    items.push(el("li", {}, button));
  }
  const hadFocus = list.contains(document.activeElement) ? document.activeElement.dataset.matchId : null;
  list.replaceChildren(...items);
  if (hadFocus) list.querySelector(`[data-match-id="${CSS.escape(hadFocus)}"]`)?.focus();
  $("matches-empty").hidden = items.length > 0;
  document.title = yourTurn ? `(${yourTurn}) ${BASE_TITLE}` : BASE_TITLE;
}

// ------------------------------------------------------- ladder, friends

function renderLadder() {
  const elo = st.elo;
  if (!elo) {
    setText($("my-rating"), "");
  } else if (elo.elo === null || elo.elo === undefined) {
    setText($("my-rating"), "Temporary account: no rating, your matches are unranked.");
  } else {
    setText($("my-rating"), `Your Elo: ${elo.elo}${elo.rank ? `, rank ${elo.rank}` : ""}.`);
  }
  const names = elo && Array.isArray(elo.top_names) ? elo.top_names : [];
  const elos = elo && Array.isArray(elo.top_elos) ? elo.top_elos : [];
  const rows = names.map((name, i) => {
    const you = name === st.user;
    const tr = el(
      "tr",
      { class: you ? "me" : "" },
      el("td", { text: String(i + 1) }),
      el("td", { text: you ? `${name} (you)` : name }),
      el("td", { text: elos[i] === undefined ? "–" : String(elos[i]) }),
    );
    return tr;
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 3, text: "No rated player yet." })));
  $("ladder-body").replaceChildren(...rows);
}

function renderFriends() {
  const { friends, elos } = st.friends;
  const items = friends.map((name, i) =>
    el(
      "li",
      { class: "friend", "data-testid": "friend", "data-name": name },
      el("span", { class: "name", text: name }),
      el("span", { class: "small", text: elos[i] === null || elos[i] === undefined ? "no rating" : `Elo ${elos[i]}` }),
      el("button", { type: "button", "data-testid": "friend-challenge", "data-action": "challenge", "data-name": name, "aria-label": `Challenge ${name}`, text: "Challenge" }),
      el("button", { type: "button", "data-testid": "friend-remove", "data-action": "remove", "data-name": name, "aria-label": `Remove ${name} from friends`, text: "Remove" }),
    ),
  );
  $("friend-list").replaceChildren(...items);
  $("friends-empty").hidden = items.length > 0;
}

// ------------------------------------------------------------------ views

function render() {
  const inside = st.phase !== "idle" && st.user !== null;
  const waiting = st.phase === "reconnect" && st.user === null && st.retries === 0; // restoring on load
  $("login-panel").hidden = inside || waiting;
  for (const id of ["lobby-panel", "ladder-panel", "friends-panel"]) $(id).hidden = !inside;
  $("me-bar").hidden = !inside;
  if (inside) {
    const kind = st.elo && (st.elo.elo === null || st.elo.elo === undefined) ? " (temporary account)" : "";
    setText($("me"), `Logged in as ${st.user}${kind}.`);
  }
  renderMatchList();
  renderMatchPanel();
  renderLadder();
  renderFriends();
}

// ------------------------------------------------------------------- wiring

function requestMatch(player) {
  if (send("match_request", { player })) {
    st.wantNew = true;
    message("lobby-msg", player ? `Challenging ${player}…` : "Looking for an opponent…");
  }
}

function wire() {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = cleanName($("login-name").value);
    const pw = $("login-pw").value;
    if (!NAME.test(name)) {
      message("login-error", "A name is 3 to 16 characters: a–z, 0–9, _ and -.", true);
      $("login-name").focus();
      return;
    }
    if (pw.length > 32) {
      message("login-error", "A password is at most 32 characters.", true);
      return;
    }
    message("login-error", "");
    st.pendingName = name;
    connect({ type: "login", data: { name, pw } });
  });

  $("logout-btn").addEventListener("click", () => {
    storeSession(null);
    st.phase = "idle";
    dropSocket();
    st.user = null;
    st.matches.clear();
    st.selected = null;
    setText($("conn"), "Logged out.");
    render();
    $("login-name").focus();
  });

  $("random-btn").addEventListener("click", () => requestMatch(null));

  $("challenge-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = cleanName($("challenge-name").value);
    if (!NAME.test(name)) {
      message("lobby-msg", "Type the name of a player to challenge (3 to 16 characters: a–z, 0–9, _ and -).", true);
      return;
    }
    requestMatch(name);
    $("challenge-name").value = "";
  });

  $("end-btn").addEventListener("click", () => {
    const id = st.selected;
    if (!id) return;
    if (st.endArmed !== id) {
      st.endArmed = id;
      clearTimeout(st.endTimer);
      st.endTimer = setTimeout(() => {
        disarmEnd();
        render();
      }, CONFIRM_MS);
      setText($("match-hint"), "Press “Give up” again within 5 seconds to end this match (a ranked match you have both moved in counts as a loss).");
      render();
      return;
    }
    disarmEnd();
    if (send("end_match", { id })) {
      st.endSent.add(id);
      setText($("match-hint"), "");
    }
    render();
  });

  $("close-btn").addEventListener("click", () => {
    st.matches.delete(st.selected);
    const next = st.matches.keys().next();
    st.selected = null;
    if (!next.done) select(next.value, false);
    else render();
    $("lobby-title").focus();
  });

  $("friend-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = cleanName($("friend-name").value);
    if (!NAME.test(user)) {
      message("friends-msg", "Type a player's name (3 to 16 characters: a–z, 0–9, _ and -).", true);
      return;
    }
    if (send("friend_request", { user })) $("friend-name").value = "";
  });

  $("friend-list").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    if (button.dataset.action === "challenge") requestMatch(button.dataset.name);
    else if (send("unfriend_request", { user: button.dataset.name })) $("friends-title").focus(); // the button goes
  });
}

buildBoard();
wire();
const saved = storedSession();
if (saved) connect({ type: "reconnect", data: { id: saved } });
render();
