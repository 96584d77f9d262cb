/* Live readings for the dashboard pages: window.SensorsLive.start({onReadings, onStatus, onResync}).
 *
 * Opens the ingest server's /live WebSocket with a short-lived token from /api/v1/live/token.
 * When the link drops it reconnects with exponential backoff (a new token each time) and then
 * calls onResync(sinceMs) so the page fetches what it missed from the API. After several
 * failed attempts in a row it polls /api/v1/latest instead, trying the WebSocket again now
 * and then. onStatus says honestly which of "live", "reconnecting" or "polling" is in force:
 * "live" only once the server said "ready" (readings committed from then on reach this page;
 * what came before, since the page loaded or the link dropped, is fetched through onResync)
 * and while its heartbeats arrive.
 */
(function () {
  "use strict";

  var TOKEN_URL = "/api/v1/live/token";
  var LATEST_URL = "/api/v1/latest";
  var DEFAULTS = {
    firstDelayMs: 500,         // first reconnect delay, doubled per failure
    maxDelayMs: 30000,         // longest reconnect delay
    failuresBeforePolling: 3,  // failed attempts in a row before polling starts
    pollMs: 5000,              // polling interval
    retryWhilePollingMs: 60000, // how often the WebSocket is tried again while polling
    staleMs: 50000,            // no message (the server sends a heartbeat every 15 s): link is dead
    resyncMarginMs: 5000       // readings committed just before the drop may not have reached us
  };

  function start(handlers, options) {
    var opts = Object.assign({}, DEFAULTS, options || {});
    var onReadings = handlers.onReadings || function () {};
    var onStatus = handlers.onStatus || function () {};
    var onResync = handlers.onResync || function () {};
    var ws = null;
    var stopped = false;
    var status = null;
    var failures = 0;
    var lostAt = Date.now(); // since when readings may be missing (null: none); the page's data is from about now
    var lastTs = {};         // device id -> newest reading time seen, for polling
    var reconnectTimer = null;
    var pollTimer = null;
    var staleTimer = null;
    var polling = false;

    function setStatus(next) {
      if (next !== status) {
        status = next;
        onStatus(next);
      }
    }

    function note(readings) {
      readings.forEach(function (r) {
        if (!(r.ts <= lastTs[r.device_id])) {
          lastTs[r.device_id] = r.ts;
        }
      });
    }

    function fetchJson(url) {
      return fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (resp) {
          if (!resp.ok) {
            throw new Error(url + ": HTTP " + resp.status);
          }
          return resp.json();
        });
    }

    function connect() {
      reconnectTimer = null;
      if (stopped) {
        return;
      }
      fetchJson(TOKEN_URL).then(function (grant) {
        if (stopped) {
          return;
        }
        var sep = grant.url.indexOf("?") < 0 ? "?" : "&";
        open(grant.url + sep + "token=" + encodeURIComponent(grant.token));
      }).catch(function () {
        failed();
      });
    }

    function open(url) {
      var socket;
      try {
        socket = new WebSocket(url);
      } catch (e) {
        failed();
        return;
      }
      var opened = false;
      ws = socket;
      socket.onopen = function () {
        opened = true;
        failures = 0;
        stopPolling();
        armStaleTimer();
      };
      socket.onmessage = function (event) {
        armStaleTimer();
        var message;
        try {
          message = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        if (message && message.ready === true) {
          ready();
        }
        if (message && Array.isArray(message.readings) && message.readings.length) {
          note(message.readings);
          onReadings(message.readings);
        }
      };
      socket.onclose = function () {
        if (ws === socket) {
          ws = null;
        }
        clearTimeout(staleTimer);
        if (stopped) {
          return;
        }
        if (opened && lostAt === null) {
          lostAt = Date.now();
        }
        failed();
      };
    }

    function ready() {
      setStatus("live");
      if (lostAt !== null) {
        var since = lostAt - opts.resyncMarginMs;
        lostAt = null;
        onResync(since);
      }
    }

    function armStaleTimer() {
      clearTimeout(staleTimer);
      staleTimer = setTimeout(function () {
        if (ws) {
          ws.close();  // onclose reconnects
        }
      }, opts.staleMs);
    }

    function failed() {
      if (stopped) {
        return;
      }
      failures += 1;
      if (failures >= opts.failuresBeforePolling && !polling) {
        startPolling();
      }
      if (!polling) {
        setStatus("reconnecting");
      }
      var delay = polling ? opts.retryWhilePollingMs
        : Math.min(opts.maxDelayMs, opts.firstDelayMs * Math.pow(2, failures - 1));
      delay = delay * (0.75 + Math.random() / 2);  // many pages must not retry in step
      clearTimeout(reconnectTimer);
      reconnectTimer = setTimeout(connect, delay);
    }

    function startPolling() {
      polling = true;
      if (lostAt === null) {
        lostAt = Date.now();
      }
      poll();
    }

    function stopPolling() {
      polling = false;
      clearTimeout(pollTimer);
      pollTimer = null;
    }

    function poll() {
      pollTimer = null;
      fetchJson(LATEST_URL).then(function (latest) {
        if (!polling || stopped) {
          return;
        }
        setStatus("polling");
        if (lostAt !== null) {  // once: what happened between the drop and this first poll
          var since = lostAt - opts.resyncMarginMs;
          lostAt = Date.now();  // the WebSocket, once back, resyncs from here
          onResync(since);
        }
        var fresh = [];
        latest.forEach(function (item) {
          if (item.time_ms === null || item.time_ms <= lastTs[item.device_id]) {
            return;
          }
          var values = {};
          Object.keys(item.values || {}).forEach(function (name) {
            if (item.values[name] !== null) {
              values[name] = item.values[name];
            }
          });
          fresh.push({device_id: item.device_id, device: item.device, ts: item.time_ms, values: values});
        });
        if (fresh.length) {
          note(fresh);
          onReadings(fresh);
        }
      }).catch(function () {
        if (polling && !stopped) {
          setStatus("reconnecting");
        }
      }).then(function () {
        if (polling && !stopped) {
          pollTimer = setTimeout(poll, opts.pollMs);
        }
      });
    }

    setStatus("reconnecting");
    connect();

    return {
      stop: function () {
        stopped = true;
        stopPolling();
        clearTimeout(reconnectTimer);
        clearTimeout(staleTimer);
        if (ws) {
          ws.close(1000, "page closed");
          ws = null;
        }
      },
      status: function () {
        return status;
      }
    };
  }

  window.SensorsLive = {start: start};
}());
