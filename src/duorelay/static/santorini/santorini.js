// duorelay: Santorini observers. No dependencies; no inline code (CSP-friendly).
//
// Data: GET /santorini/api/tournaments, /santorini/api/tournaments/{id},
// /santorini/api/games/{match_id}; live: websocket /santorini/live (tournament
// events: the page reloads what it shows) and /santorini/live/{match_id} (the
// game's state, then each event; closed with 1000 "game over").
"use strict";

(() => {
  const SIZE = 6;
  const $ = (id) => document.getElementById(id);
  const wsBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;

  let shownTournament = null; // id of the tournament shown
  let game = null; // {id, players, boards, texts, step, base, live}: the game panel

  // ---- boards: {heights: [36], workers: {name: [x, y]}} ----

  function emptyBoard() {
    return { heights: new Array(SIZE * SIZE).fill(0), workers: {} };
  }

  function parseBoard(rows) {
    const board = emptyBoard();
    rows.forEach((row, y) =>
      row.forEach((cell, x) => {
        if (typeof cell === "number") {
          board.heights[y * SIZE + x] = cell;
        } else {
          const m = /^(\d)([a-z]+[12])$/.exec(cell);
          if (m) {
            board.heights[y * SIZE + x] = Number(m[1]);
            board.workers[m[2]] = [x, y];
          }
        }
      }),
    );
    return board;
  }

  function applyEvent(board, event) {
    if (event.kind === "placement") {
      const next = { heights: board.heights.slice(), workers: { ...board.workers } };
      next.workers[event.worker] = event.place;
      return next;
    }
    if (event.kind === "action") return parseBoard(event.board);
    return board;
  }

  const DIRS = { EAST: "east", WEST: "west", NORTH: "north", SOUTH: "south" };
  function direction(ew, ns) {
    return [ns, ew].filter((d) => d !== "PUT").map((d) => DIRS[d]).join("-") || "nowhere";
  }

  function describe(event) {
    if (event.kind === "placement") {
      return `${event.player} places ${event.worker} at (${event.place[0]}, ${event.place[1]})`;
    }
    if (event.kind === "action") {
      const a = event.action;
      if (typeof a === "string") return `${event.player} gives up`;
      const move = `${event.player} moves ${a[0]} ${direction(a[1], a[2])}`;
      return a.length === 3 ? `${move} onto level 3` : `${move}, builds ${direction(a[3], a[4])}`;
    }
    if (event.kind === "outcome") return resultText(event);
    return event.kind;
  }

  function resultText(result) {
    const how = {
      climb: "climbed to level 3",
      forfeit: `${result.loser} gave up`,
      stuck: `${result.loser} was stuck`,
      irregular: `${result.loser} broke the rules: ${result.reason}`,
    }[result.ending];
    return `${result.winner} wins (${how || result.ending})`;
  }

  // ---- rendering ----

  function renderBoard(board, players) {
    const owners = {};
    for (const [name, place] of Object.entries(board.workers)) owners[place.join(",")] = name;
    const body = $("board-body");
    body.replaceChildren();
    for (let y = 0; y < SIZE; y++) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = `y ${y}`;
      tr.append(th);
      for (let x = 0; x < SIZE; x++) {
        const height = board.heights[y * SIZE + x];
        const td = document.createElement("td");
        td.className = `level level-${height}`;
        td.dataset.x = String(x);
        td.dataset.y = String(y);
        const level = document.createElement("span");
        level.className = "height";
        level.textContent = height === 4 ? "dome" : String(height);
        td.append(level);
        const worker = owners[`${x},${y}`];
        if (worker) {
          const w = document.createElement("span");
          const one = worker.slice(0, -1) === players[0];
          w.className = `worker ${one ? "one" : "two"}`;
          w.textContent = worker;
          td.append(" ", w);
        }
        tr.append(td);
      }
      body.append(tr);
    }
    $("legend").textContent = `${players[0]}'s workers are blue, ${players[1]}'s are orange.`;
  }

  function showStep() {
    const last = game.boards.length - 1;
    renderBoard(game.boards[game.step], game.players);
    $("step").textContent =
      game.step === 0
        ? `Step 0 of ${last}: the empty board`
        : `Step ${game.step} of ${last}: ${game.texts[game.step - 1]}`;
    const replay = !game.live;
    // aria-disabled, not disabled: a button in use keeps the keyboard focus.
    setDisabled("first", !replay || game.step === 0);
    setDisabled("previous", !replay || game.step === 0);
    setDisabled("next", !replay || game.step === last);
    setDisabled("last", !replay || game.step === last);
  }

  function setDisabled(id, disabled) {
    $(id).setAttribute("aria-disabled", String(disabled));
  }

  function setGame(info, events, live) {
    const boards = [emptyBoard()];
    for (const event of events) boards.push(applyEvent(boards[boards.length - 1], event));
    game = {
      id: info.id,
      players: info.players,
      boards,
      texts: events.map(describe),
      step: boards.length - 1,
      base: 0,
      live,
    };
    $("game").hidden = false;
    $("game-title").textContent = `${info.players[0]} against ${info.players[1]}`;
  }

  // What the game panel shows is the latest view asked for: a live feed or a
  // replay. Each asks with a new number; answers for an older one are ignored.
  let view = 0;
  let liveSocket = null;
  let liveMatch = null;

  function closeLive() {
    if (liveSocket) {
      liveSocket.close(1000);
      liveSocket = null;
      liveMatch = null;
    }
  }

  // ---- replay (from the store) ----

  async function replay(matchId, atEnd) {
    const mine = ++view;
    closeLive();
    const { ok, body } = await getJson(`/santorini/api/games/${matchId}`);
    if (mine !== view) return;
    if (!ok) return showError(body.error);
    setGame(body, body.events, false);
    game.step = atEnd ? game.boards.length - 1 : 0;
    showStep();
    $("game-status").textContent =
      body.status === "over" ? `Replay: ${resultText(body.result)}` : "Replay of a game still being played";
  }

  // ---- live (websocket /santorini/live/{match_id}) ----

  function watch(matchId) {
    if (liveMatch === matchId) return;
    const mine = ++view;
    closeLive();
    const socket = new WebSocket(`${wsBase}/santorini/live/${matchId}`);
    liveSocket = socket;
    liveMatch = matchId;
    socket.onmessage = (message) => {
      if (mine !== view) return;
      const data = JSON.parse(message.data);
      if (data.kind === "state") {
        // The state's board stands for the events so far; later events step from it.
        setGame({ id: data.match, players: data.players }, [], true);
        game.boards = [parseBoard(data.board)];
        game.base = data.seq;
        game.step = 0;
        $("game-status").textContent =
          data.status === "live" ? `Live: move ${data.seq}` : `Game over: ${resultText(data.result)}`;
        showLive();
        return;
      }
      if (!game || game.id !== matchId) return;
      game.boards.push(applyEvent(game.boards[game.boards.length - 1], data));
      game.texts.push(describe(data));
      game.step = game.boards.length - 1;
      $("game-status").textContent =
        data.kind === "outcome" ? `Game over: ${resultText(data)}` : `Live: move ${data.seq}`;
      showLive();
    };
    socket.onclose = (close) => {
      if (mine !== view) return;
      liveSocket = null;
      liveMatch = null;
      if (close.code === 1000) {
        replay(matchId, true); // the whole game from the store, with the steps
      } else if (game) {
        game.live = false;
        $("game-status").textContent = `The live feed closed (${close.code}${close.reason ? `: ${close.reason}` : ""})`;
      } else {
        showError(`The live feed closed (${close.code}${close.reason ? `: ${close.reason}` : ""})`);
      }
    };
  }

  function showLive() {
    renderBoard(game.boards[game.step], game.players);
    const seq = game.base + game.step;
    $("step").textContent = game.step === 0 ? `Move ${seq}` : `Move ${seq}: ${game.texts[game.step - 1]}`;
    for (const id of ["first", "previous", "next", "last"]) setDisabled(id, true);
  }

  // ---- tournaments ----

  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    return { ok: response.ok, body: await response.json() };
  }

  function showError(message) {
    $("api-error").textContent = message;
    $("api-error").hidden = false;
  }

  function button(text, onClick, className) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    if (className) b.className = className;
    b.addEventListener("click", onClick);
    return b;
  }

  async function loadTournaments() {
    const { ok, body } = await getJson("/santorini/api/tournaments");
    if (!ok) return showError(body.error);
    $("api-error").hidden = true;
    const list = $("tournament-list");
    list.replaceChildren();
    $("tournaments-empty").hidden = body.tournaments.length > 0;
    body.tournaments.forEach((t, index) => {
      const li = document.createElement("li");
      const label = `Tournament ${t.id}${index === 0 ? " (current)" : ""}: ${t.status}, ${t.players.length} players`;
      const b = button(label, () => loadTournament(t.id, true));
      if (t.id === shownTournament) b.setAttribute("aria-current", "true");
      li.append(b);
      list.append(li);
    });
    const wanted = shownTournament ?? (body.tournaments[0] && body.tournaments[0].id);
    if (wanted !== undefined && wanted !== null) await loadTournament(wanted, false);
  }

  async function loadTournament(id, chosen) {
    const { ok, body } = await getJson(`/santorini/api/tournaments/${id}`);
    if (!ok) return showError(body.error);
    shownTournament = id;
    for (const b of $("tournament-list").querySelectorAll("button")) {
      if (b.textContent.startsWith(`Tournament ${id}`)) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
    $("tournament").hidden = false;
    $("tournament-title").textContent = `Tournament ${body.id}`;
    $("tournament-status").textContent =
      body.status === "live" ? `Being played since ${body.started_at}.` : `Over at ${body.finished_at}.`;
    const players = $("tournament-players");
    players.replaceChildren(...body.players.map((name) => item(name)));
    const rows = $("schedule-body");
    rows.replaceChildren();
    let live = null;
    body.schedule.forEach(([one, two], index) => {
      const tr = document.createElement("tr");
      const games = document.createElement("td");
      const played = body.games.filter((g) => g.players[0] === one && g.players[1] === two);
      played.forEach((g, n) => {
        if (g.status === "live") {
          live = g;
          games.append(button(`Game ${n + 1}: watch live`, () => followOff(() => watch(g.id)), "live"));
        } else {
          games.append(
            button(`Game ${n + 1}: replay (${g.result.winner} won)`, () => followOff(() => replay(g.id, false))),
          );
        }
        games.append(" ");
      });
      if (played.length === 0) games.append("not played yet");
      tr.append(cell("th", String(index + 1)), cell("td", one), cell("td", two), games);
      tr.firstChild.scope = "row";
      rows.append(tr);
    });
    const results = body.results || [];
    $("tournament-results").replaceChildren(
      ...results.map(([winner, loser, irregular]) =>
        item(`${winner} beat ${loser}${irregular ? " (irregular: the loser broke the rules)" : ""}`),
      ),
    );
    $("tournament-no-results").hidden = body.results !== null;
    if (live && $("follow").checked && !chosen) watch(live.id);
  }

  function followOff(then) {
    $("follow").checked = false;
    then();
  }

  function item(text) {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }

  function cell(tag, text) {
    const c = document.createElement(tag);
    c.textContent = text;
    return c;
  }

  // ---- the tournaments feed ----

  function connect() {
    const socket = new WebSocket(`${wsBase}/santorini/live`);
    socket.onopen = () => {
      $("conn").textContent = "Live updates: connected.";
      loadTournaments();
    };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.kind === "tournament-start") shownTournament = null; // show the new one
      if (event.kind === "game-start" && $("follow").checked) watch(event.match);
      loadTournaments();
    };
    socket.onclose = (close) => {
      $("conn").textContent = `Live updates: disconnected (${close.code}${close.reason ? `: ${close.reason}` : ""}).`;
      if (close.code !== 1000 && close.code !== 1001) loadTournaments();
    };
  }

  // ---- steps: buttons and keys ----

  function step(to) {
    if (!game || game.live) return;
    game.step = Math.max(0, Math.min(game.boards.length - 1, to));
    showStep();
  }

  $("first").addEventListener("click", () => step(0));
  $("previous").addEventListener("click", () => step(game.step - 1));
  $("next").addEventListener("click", () => step(game.step + 1));
  $("last").addEventListener("click", () => step(Infinity));
  $("steps").addEventListener("keydown", (event) => {
    const keys = { Home: 0, ArrowLeft: -1, ArrowRight: 1, End: Infinity };
    if (!(event.key in keys) || !game) return;
    event.preventDefault();
    const k = keys[event.key];
    step(k === 0 || k === Infinity ? k : game.step + k);
  });
  $("follow").addEventListener("change", () => {
    if ($("follow").checked) loadTournaments();
  });

  connect();
})();
