// duorelay: the XO page (/xo/). A plain ES module: no dependencies, no build,
// no inline code (the CSP allows scripts and styles from this server only).
//
// It speaks the contract of docs/xogame.md:
//   POST /auth/signup, POST /auth/login (form username, password) -> {access_token}
//   GET /players/me -> {uuid}; POST /game/ -> {game_uuid}
//   GET /game/awaiting -> {games: [{uuid, player_created, date_created}]}
//   POST /game/connect {uuid} -> null; GET /auth/intratoken/{game} -> {access_token}
//   GET /game/fetch/{game} -> [event]; websocket /ws (authorize, command, broadcasts).
// The login token is kept in sessionStorage (one login per tab), sent as
// "Authorization: Bearer" on every call; a 401 brings the login form back.
//
// Views (one shown at a time) and the ids / data-testid tests rely on:
//   #login-view [login-view]   #auth-form [auth-form], #username [username],
//                              #password [password], #login-btn [login],
//                              #signup-btn [signup], #auth-error [auth-error]
//   header                     #signed-in [signed-in], #me-name, #logout-btn [logout]
//   #lobby-view [lobby-view]   #create-btn [create-game], #refresh-btn [refresh],
//                              #lobby-error [lobby-error], #lobby-status [lobby-status],
//                              #games-table [games-table] > #games-body > tr[game-row][data-game=uuid]
//                                with a button [join-game] (or [open-game] for your own game),
//                              #games-empty [games-empty],
//                              #my-games [my-games] > li[my-game][data-game=uuid] > button [open-game],
//                              #my-games-empty [my-games-empty]
//   #game-view [game-view]     #game-id [game-id], #you-mark [you-mark] ("X", "O" or "?"),
//                              #conn [conn] (data-state: offline|connecting|online|closed),
//                              #status [status] (aria-live; data-state: waiting|your-turn|
//                                their-turn|won|lost|draw), #game-error [game-error],
//                              #board [board] > button.cell [cell-X-Y] (X column, Y row, from 0;
//                                data-x, data-y, data-mark "X"|"O"|""; accessible name
//                                "row R column C, X|O|empty", R and C counted from 1),
//                              #back-btn [back-to-lobby],
//                              #log-section [log-section] (shown once the game is over),
//                              #log-table [log-table] > #log-body > tr[log-row][data-sequence]
//                                cells: sequence, name, player, cell, time
//   <body data-view="login|lobby|game">
//
// Keyboard on the board: one cell is in the tab order (roving tabindex); arrow
// keys move between cells, Home/End go to the start/end of the row, Enter or
// Space plays the focused cell (a native <button>).
//
// The page's URL hash holds the game shown (#game=UUID): a reload goes back to it.

const $ = (id) => document.getElementById(id);

const TOKEN_KEY = "duorelay.xo.token";
const NAME_KEY = "duorelay.xo.username";
const GAMES_KEY = "duorelay.xo.games";
const LOBBY_POLL_MS = 4000;
const RECONNECT_MS = [500, 1000, 2000, 4000, 8000];

// ---------------------------------------------------------------- session

const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  me: null, // the player's uuid, from GET /players/me
};

function myGames() {
  try {
    const list = JSON.parse(sessionStorage.getItem(GAMES_KEY) || "[]");
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

function rememberGame(uuid) {
  const list = myGames().filter((g) => g !== uuid);
  list.unshift(uuid);
  sessionStorage.setItem(GAMES_KEY, JSON.stringify(list.slice(0, 20)));
}

// ---------------------------------------------------------------- HTTP

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function detailText(body, status) {
  const detail = body && typeof body === "object" ? body.detail : null;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).slice(-1)[0] || "request"}: ${d.msg}`).join("; ");
  }
  return `HTTP ${status}`;
}

/** Call the API; JSON in and out. `form`: an object sent as a urlencoded form. */
async function api(method, path, { json, form, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (auth && session.token) headers.Authorization = `Bearer ${session.token}`;
  let body;
  if (form) {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(form).toString();
  } else if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch {
    throw new ApiError(0, "The server cannot be reached.");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && auth) {
      sessionExpired();
      throw new ApiError(401, "Your session has ended: log in again.");
    }
    throw new ApiError(response.status, detailText(data, response.status));
  }
  return data;
}

// ---------------------------------------------------------------- views

const VIEWS = ["login", "lobby", "game"];

function show(view) {
  for (const v of VIEWS) $(`${v}-view`).hidden = v !== view;
  document.body.dataset.view = view;
  $("signed-in").hidden = view === "login";
  $("me-name").textContent = sessionStorage.getItem(NAME_KEY) || "?";
  if (view === "lobby") startLobbyPoll();
  else stopLobbyPoll();
  if (view !== "game") leaveGame();
}

function sessionExpired() {
  session.token = null;
  session.me = null;
  show("login");
  $("auth-error").textContent = "Your session has ended: log in again.";
  $("username").focus();
}

// ---------------------------------------------------------------- login

async function authenticate(path) {
  const username = $("username").value.trim();
  const password = $("password").value;
  const error = $("auth-error");
  if (!username || !password) {
    error.textContent = "Please type a user name and a password.";
    (username ? $("password") : $("username")).focus();
    return;
  }
  error.textContent = "";
  try {
    const reply = await api("POST", path, { form: { username, password }, auth: false });
    if (!reply || !reply.access_token) throw new ApiError(0, "The server gave no token.");
    session.token = reply.access_token;
    sessionStorage.setItem(NAME_KEY, username);
    $("password").value = "";
    await signedIn();
  } catch (e) {
    session.token = null;
    error.textContent = e.message;
  }
}

/** After a login (or a reload with a token): learn who we are, then lobby or game. */
async function signedIn() {
  try {
    const me = await api("GET", "/players/me");
    session.me = me.uuid;
  } catch (e) {
    if (e.status !== 401) {
      show("login");
      $("auth-error").textContent = e.message;
    }
    return;
  }
  const wanted = /^#game=([0-9a-fA-F-]{8,64})$/.exec(location.hash);
  if (wanted) openGame(wanted[1]);
  else showLobby();
}

// ---------------------------------------------------------------- lobby

let lobbyTimer = null;

function startLobbyPoll() {
  if (lobbyTimer === null) lobbyTimer = setInterval(refreshLobby, LOBBY_POLL_MS);
}

function stopLobbyPoll() {
  if (lobbyTimer !== null) clearInterval(lobbyTimer);
  lobbyTimer = null;
}

function showLobby() {
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  show("lobby");
  renderMyGames();
  refreshLobby();
}

function shortId(uuid) {
  return typeof uuid === "string" ? uuid.slice(0, 8) : "?";
}

function playerName(uuid) {
  if (uuid && uuid === session.me) return `you (${shortId(uuid)})`;
  return `player ${shortId(uuid)}`;
}

function timeText(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

let refreshing = false;

async function refreshLobby() {
  if (refreshing || document.body.dataset.view !== "lobby") return;
  refreshing = true;
  try {
    const reply = await api("GET", "/game/awaiting");
    if (document.body.dataset.view !== "lobby") return;
    renderLobby(Array.isArray(reply?.games) ? reply.games : []);
    $("lobby-error").textContent = "";
    $("lobby-status").textContent = `Updated at ${new Date().toLocaleTimeString()}.`;
  } catch (e) {
    if (e.status !== 401) $("lobby-error").textContent = `The lobby could not be loaded: ${e.message}`;
  } finally {
    refreshing = false;
  }
}

function renderLobby(games) {
  const body = $("games-body");
  const focused = document.activeElement?.dataset?.game; // keep the focus across a refresh
  body.replaceChildren();
  for (const game of games) {
    const tr = document.createElement("tr");
    tr.dataset.testid = "game-row";
    tr.dataset.game = game.uuid;
    const creator = document.createElement("td");
    creator.textContent = playerName(game.player_created);
    const created = document.createElement("td");
    created.textContent = timeText(game.date_created);
    const action = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.game = game.uuid;
    if (game.player_created === session.me) {
      button.textContent = "Open";
      button.dataset.testid = "open-game";
      button.setAttribute("aria-label", `Open your game ${shortId(game.uuid)}`);
      button.addEventListener("click", () => openGame(game.uuid));
    } else {
      button.textContent = "Join";
      button.dataset.testid = "join-game";
      button.setAttribute("aria-label", `Join game ${shortId(game.uuid)} of ${playerName(game.player_created)}`);
      button.addEventListener("click", () => joinGame(game.uuid));
    }
    action.append(button);
    tr.append(creator, created, action);
    body.append(tr);
    if (focused === game.uuid) button.focus();
  }
  $("games-table").hidden = games.length === 0;
  $("games-empty").hidden = games.length !== 0;
}

function renderMyGames() {
  const list = $("my-games");
  list.replaceChildren();
  const games = myGames();
  for (const uuid of games) {
    const li = document.createElement("li");
    li.dataset.testid = "my-game";
    li.dataset.game = uuid;
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.testid = "open-game";
    button.dataset.game = uuid;
    button.textContent = `Open game ${shortId(uuid)}`;
    button.addEventListener("click", () => openGame(uuid));
    li.append(button);
    list.append(li);
  }
  $("my-games-empty").hidden = games.length !== 0;
}

async function createGame() {
  $("lobby-error").textContent = "";
  try {
    const reply = await api("POST", "/game/");
    const uuid = reply?.game_uuid || reply?.uuid;
    if (!uuid) throw new ApiError(0, "The server gave no game id.");
    openGame(uuid);
  } catch (e) {
    if (e.status !== 401) $("lobby-error").textContent = `No game created: ${e.message}`;
  }
}

async function joinGame(uuid) {
  $("lobby-error").textContent = "";
  try {
    await api("POST", "/game/connect", { json: { uuid } });
    openGame(uuid);
  } catch (e) {
    if (e.status === 401) return;
    const why = { 404: "that game no longer exists", 409: "someone else joined it first" }[e.status];
    $("lobby-error").textContent = `Could not join: ${why || e.message}.`;
    refreshLobby();
  }
}

// ---------------------------------------------------------------- the game

/**
 * The game shown: {uuid, events: Map(sequence -> event), ws, authorized,
 * closing, retries, timer, focus: [x, y]}. The board is computed from the
 * events every time (a replay), so events arriving twice or out of order
 * (a broadcast and a fetch) give the same board.
 */
let game = null;

function emptyGame(uuid) {
  return {
    uuid,
    events: new Map(),
    ws: null,
    authorized: false,
    closing: false,
    refused: false, // the server refused the authorize: no retry
    retries: 0,
    timer: null,
    focus: [0, 0],
    drawn: "", // the board size drawn, "WxH"
  };
}

/** The X player of a game_init event's params: the starter. Read defensively. */
function starterOf(params, firstMove) {
  const players = [params.initiator, params.opponent];
  for (const key of ["starter", "x", "x_player", "player_x", "first", "first_player", "starting_player"]) {
    const value = params[key];
    if (typeof value !== "string") continue;
    if (players.includes(value)) return value;
    if (value === "initiator" || value === "opponent") return params[value];
  }
  if (firstMove) return firstMove.params?.player ?? firstMove.player_uuid; // the first move is X's
  return params.initiator; // unknown until the first move: assume the initiator
}

/** The state of the game from its events. */
function replay(events) {
  const sorted = [...events.values()].sort((a, b) => a.sequence - b.sequence);
  const init = sorted.find((e) => e.name === "game_init") || null;
  const moves = sorted.filter((e) => e.name === "move");
  const over = sorted.find((e) => e.name === "game_over") || null;
  const lastSequence = sorted.length ? sorted[sorted.length - 1].sequence : 0;
  if (!init) return { init, moves, over, lastSequence, sorted };
  const p = init.params || {};
  const width = Number(p.grid_width) || 6;
  const height = Number(p.grid_height) || 6;
  const x = starterOf(p, moves[0]);
  const o = x === p.initiator ? p.opponent : p.initiator;
  const marks = new Map(); // "x,y" -> "X" | "O"
  for (const move of moves) {
    const [cx, cy] = move.params?.cell || [];
    const who = move.params?.player ?? move.player_uuid;
    marks.set(`${cx},${cy}`, who === x ? "X" : "O");
  }
  const toMove = moves.length % 2 === 0 ? x : o;
  return { init, moves, over, lastSequence, sorted, width, height, x, o, marks, toMove };
}

function addEvents(list) {
  if (!game) return;
  for (const event of list) {
    if (!event || typeof event !== "object") continue;
    if (event.game_uuid && event.game_uuid !== game.uuid) continue;
    if (typeof event.sequence !== "number") continue;
    game.events.set(event.sequence, event);
  }
  render();
}

function markOf(state, player) {
  if (player === state.x) return "X";
  if (player === state.o) return "O";
  return "?";
}

function setStatus(text, state) {
  const status = $("status");
  if (status.textContent !== text) status.textContent = text;
  status.dataset.state = state;
}

function render() {
  if (!game) return;
  const state = replay(game.events);
  $("game-id").textContent = game.uuid;
  if (!state.init) {
    $("you-mark").textContent = "?";
    setStatus("Waiting for an opponent to join…", "waiting");
    drawBoard(null);
    $("log-section").hidden = true;
    return;
  }
  const mine = markOf(state, session.me);
  $("you-mark").textContent = mine;
  if (state.over) {
    const { winner, draw } = state.over.params || {};
    if (draw || !winner) setStatus("Game over: a draw.", "draw");
    else if (winner === session.me) setStatus(`Game over: you win (${mine})!`, "won");
    else setStatus(`Game over: you lose, ${markOf(state, winner)} wins.`, "lost");
  } else if (state.toMove === session.me) {
    setStatus(`Your turn: you play ${mine}.`, "your-turn");
  } else {
    setStatus(`Their turn: ${markOf(state, state.toMove)} to move.`, "their-turn");
  }
  drawBoard(state);
  renderLog(state);
}

function cellName(x, y, mark) {
  return `row ${y + 1} column ${x + 1}, ${mark || "empty"}`;
}

function drawBoard(state) {
  const board = $("board");
  if (!state) {
    board.replaceChildren();
    board.hidden = true;
    $("board-hint").hidden = true;
    game.drawn = "";
    return;
  }
  board.hidden = false;
  $("board-hint").hidden = false;
  const size = `${state.width}x${state.height}`;
  if (game.drawn !== size) {
    // Build the buttons once per size; later renders only update them (the focus stays).
    board.replaceChildren();
    board.style.setProperty("--columns", String(state.width));
    board.setAttribute("aria-label", `Board, ${state.width} columns by ${state.height} rows`);
    for (let y = 0; y < state.height; y++) {
      for (let x = 0; x < state.width; x++) {
        const cell = document.createElement("button");
        cell.type = "button";
        cell.className = "cell";
        cell.dataset.x = String(x);
        cell.dataset.y = String(y);
        cell.dataset.testid = `cell-${x}-${y}`;
        cell.tabIndex = -1;
        board.append(cell);
      }
    }
    game.drawn = size;
    game.focus = [Math.min(game.focus[0], state.width - 1), Math.min(game.focus[1], state.height - 1)];
  }
  const playable = !state.over && state.toMove === session.me && game.authorized;
  board.classList.toggle("playable", playable);
  board.classList.toggle("over", Boolean(state.over));
  for (const cell of board.children) {
    const x = Number(cell.dataset.x);
    const y = Number(cell.dataset.y);
    const mark = state.marks.get(`${x},${y}`) || "";
    if (cell.dataset.mark !== mark || cell.textContent !== mark) {
      cell.textContent = mark;
      cell.dataset.mark = mark;
    }
    cell.setAttribute("aria-label", cellName(x, y, mark));
    const blocked = !playable || mark !== "";
    cell.setAttribute("aria-disabled", String(blocked));
    cell.tabIndex = x === game.focus[0] && y === game.focus[1] ? 0 : -1;
  }
}

function renderLog(state) {
  const section = $("log-section");
  section.hidden = !state.over;
  if (!state.over) return;
  const body = $("log-body");
  body.replaceChildren();
  for (const event of state.sorted) {
    const tr = document.createElement("tr");
    tr.dataset.testid = "log-row";
    tr.dataset.sequence = String(event.sequence);
    const p = event.params || {};
    let player = event.player_uuid;
    let cell = "";
    if (event.name === "move") {
      player = p.player ?? event.player_uuid;
      if (Array.isArray(p.cell)) cell = `row ${p.cell[1] + 1} column ${p.cell[0] + 1}`;
    } else if (event.name === "game_over") {
      player = p.winner || null;
    }
    let who = player ? `${markOf(state, player)}: ${playerName(player)}` : "";
    if (event.name === "game_over") who = p.draw || !p.winner ? "draw" : `winner ${who}`;
    for (const text of [String(event.sequence), event.name, who, cell]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const td = document.createElement("td");
    const time = document.createElement("time");
    const date = new Date(event.timestamp);
    if (Number.isNaN(date.getTime())) {
      time.textContent = String(event.timestamp ?? "");
    } else {
      time.dateTime = date.toISOString();
      time.title = date.toLocaleString();
      time.textContent = date.toLocaleTimeString();
    }
    td.append(time);
    tr.append(td);
    body.append(tr);
  }
}

function setConn(text, state) {
  $("conn").textContent = text;
  $("conn").dataset.state = state;
}

function openGame(uuid) {
  leaveGame();
  rememberGame(uuid);
  game = emptyGame(uuid);
  history.replaceState(null, "", `#game=${uuid}`);
  show("game");
  $("game-error").textContent = "";
  render();
  connect();
}

function leaveGame() {
  if (!game) return;
  const old = game;
  game = null;
  old.closing = true;
  clearTimeout(old.timer);
  if (old.ws) {
    try {
      if (old.ws.readyState === WebSocket.OPEN) old.ws.send(JSON.stringify({ type: "close" }));
      old.ws.close(1000);
    } catch {
      // already closed
    }
  }
}

/** Fetch the stored events: the board after a (re)connect, the log of a finished game. */
async function fetchEvents(current) {
  try {
    const events = await api("GET", `/game/fetch/${encodeURIComponent(current.uuid)}`);
    if (game === current && Array.isArray(events)) addEvents(events);
  } catch (e) {
    // 404 before the opponent joined (no event yet) is not an error worth showing.
    if (game === current && e.status !== 401 && e.status !== 404) {
      $("game-error").textContent = `The game's events could not be loaded: ${e.message}`;
    }
  }
}

/** (Re)connect the websocket: a new per-game token, authorize, then fetch. */
async function connect() {
  const current = game;
  if (!current || current.closing) return;
  setConn(current.retries ? "Reconnecting…" : "Connecting…", "connecting");
  let intratoken;
  try {
    const reply = await api("GET", `/auth/intratoken/${encodeURIComponent(current.uuid)}`);
    intratoken = reply?.access_token;
    if (!intratoken) throw new ApiError(0, "The server gave no game token.");
  } catch (e) {
    if (game !== current || e.status === 401) return;
    if (e.status === 403 || e.status === 404 || e.status === 422) {
      setConn("Not connected", "offline");
      const why = { 403: "you are not a player of this game", 404: "no such game" }[e.status];
      $("game-error").textContent = `Cannot open this game: ${why || e.message}.`;
      return;
    }
    retryLater(current, e.message);
    return;
  }
  if (game !== current) return;
  // A finished game needs no websocket: its events are all there is to show.
  await fetchEvents(current);
  if (game !== current) return;
  if (replay(current.events).over) {
    setConn("Game over", "closed");
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let ws;
  try {
    ws = new WebSocket(`${scheme}://${location.host}/ws`);
  } catch (e) {
    retryLater(current, String(e));
    return;
  }
  current.ws = ws;
  current.authorized = false;
  ws.addEventListener("open", () => {
    ws.send(JSON.stringify({ type: "authorize", data: { token: intratoken } }));
  });
  ws.addEventListener("message", (message) => onMessage(current, ws, message.data));
  ws.addEventListener("close", (event) => onClose(current, ws, event));
}

function retryLater(current, why) {
  if (game !== current || current.closing) return;
  const delay = RECONNECT_MS[Math.min(current.retries, RECONNECT_MS.length - 1)];
  current.retries += 1;
  setConn(`Offline (${why}); retrying…`, "offline");
  clearTimeout(current.timer);
  current.timer = setTimeout(connect, delay);
}

function onMessage(current, ws, raw) {
  if (game !== current || current.ws !== ws) return;
  let data;
  try {
    data = JSON.parse(raw);
    // Replies are a JSON string holding the reply object: decode twice.
    if (typeof data === "string") data = JSON.parse(data);
  } catch {
    return;
  }
  if (!data || typeof data !== "object") return;
  if (data.type === "broadcast") {
    addEvents([data.data]);
    return;
  }
  if (!("ok" in data)) return;
  if (!current.authorized) {
    if (data.ok) {
      current.authorized = true;
      current.retries = 0;
      setConn("Connected", "online");
      fetchEvents(current); // anything broadcast while we were away
      render();
    } else {
      current.refused = true;
      setConn("Refused", "offline");
      $("game-error").textContent = `Not let into the game: ${data.error || "refused"}.`;
    }
    return;
  }
  if (data.ok) $("game-error").textContent = "";
  else $("game-error").textContent = `Move refused: ${data.error || "unknown error"}.`;
}

function onClose(current, ws, event) {
  if (game !== current || current.ws !== ws) return;
  current.ws = null;
  current.authorized = false;
  render();
  if (current.closing || current.refused) return;
  if (replay(current.events).over) {
    setConn("Game over", "closed");
    return;
  }
  retryLater(current, `closed ${event.code}`);
}

function play(x, y) {
  if (!game) return;
  const state = replay(game.events);
  const error = $("game-error");
  if (!state.init) {
    error.textContent = "The game has not started: wait for an opponent.";
  } else if (state.over) {
    error.textContent = "The game is over.";
  } else if (state.toMove !== session.me) {
    error.textContent = "Not your turn.";
  } else if (state.marks.has(`${x},${y}`)) {
    error.textContent = "That cell is taken.";
  } else if (!game.ws || game.ws.readyState !== WebSocket.OPEN || !game.authorized) {
    error.textContent = "Not connected: wait for the connection to come back.";
  } else {
    error.textContent = "";
    game.ws.send(
      JSON.stringify({
        type: "command",
        data: {
          game_uuid: game.uuid,
          name: "move",
          sequence: state.lastSequence + 1,
          player_uuid: session.me,
          timestamp: new Date().toISOString(),
          params: { player: session.me, cell: [x, y] },
        },
      }),
    );
  }
}

// ---------------------------------------------------------------- board input

function moveFocus(x, y) {
  if (!game) return;
  game.focus = [x, y];
  for (const cell of $("board").children) {
    const here = Number(cell.dataset.x) === x && Number(cell.dataset.y) === y;
    cell.tabIndex = here ? 0 : -1;
    if (here) cell.focus();
  }
}

$("board").addEventListener("click", (event) => {
  const cell = event.target.closest("button.cell");
  if (!cell || !game) return;
  const x = Number(cell.dataset.x);
  const y = Number(cell.dataset.y);
  game.focus = [x, y];
  moveFocus(x, y);
  play(x, y);
});

$("board").addEventListener("keydown", (event) => {
  const cell = event.target.closest("button.cell");
  if (!cell || !game) return;
  const state = replay(game.events);
  if (!state.init) return;
  let x = Number(cell.dataset.x);
  let y = Number(cell.dataset.y);
  switch (event.key) {
    case "ArrowLeft": x = Math.max(0, x - 1); break;
    case "ArrowRight": x = Math.min(state.width - 1, x + 1); break;
    case "ArrowUp": y = Math.max(0, y - 1); break;
    case "ArrowDown": y = Math.min(state.height - 1, y + 1); break;
    case "Home": x = 0; if (event.ctrlKey) y = 0; break;
    case "End": x = state.width - 1; if (event.ctrlKey) y = state.height - 1; break;
    default: return; // Enter and Space: the button's own click
  }
  event.preventDefault();
  moveFocus(x, y);
});

// ---------------------------------------------------------------- wiring

$("auth-form").addEventListener("submit", (event) => {
  event.preventDefault();
  authenticate("/auth/login");
});
$("signup-btn").addEventListener("click", () => authenticate("/auth/signup"));
$("logout-btn").addEventListener("click", () => {
  session.token = null;
  session.me = null;
  sessionStorage.removeItem(NAME_KEY);
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  show("login");
  $("auth-error").textContent = "";
  $("username").focus();
});
$("create-btn").addEventListener("click", createGame);
$("refresh-btn").addEventListener("click", refreshLobby);
$("back-btn").addEventListener("click", showLobby);
window.addEventListener("hashchange", () => {
  if (!session.me) return;
  const wanted = /^#game=([0-9a-fA-F-]{8,64})$/.exec(location.hash);
  if (wanted && wanted[1] !== game?.uuid) openGame(wanted[1]);
  else if (!location.hash && document.body.dataset.view === "game") showLobby();
});

if (session.token) {
  signedIn();
} else {
  show("login");
}
