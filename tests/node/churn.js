// tests/node/churn.js: a node client that opens N short connections to a
// server of its own on 127.0.0.1 and closes each first (its side keeps the
// port in TIME_WAIT), then closes one descriptor twice: under libuv, which
// closes with syscall(SYS_close). Prints "done" and exits.
//   node tests/node/churn.js [N]
'use strict';
const fs = require('fs');
const net = require('net');

const N = Number(process.argv[2] || 2000);
const server = net.createServer((s) => {
  s.on('error', () => {});
  s.resume();
});

function once(port) {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1', () => {
      c.destroy(); // CHURN-CLOSE: the active close, while established
      resolve();
    });
    c.on('error', reject);
  });
}

server.listen(0, '127.0.0.1', async () => {
  const port = server.address().port;
  for (let i = 0; i < N; i++) await once(port);
  const c = net.connect(port, '127.0.0.1', () => {
    fs.closeSync(c._handle.fd); // DOUBLE-FIRST
    c.destroy(); // DOUBLE-AGAIN: libuv closes the number again
    server.close();
    console.log('done');
  });
  c.on('error', () => {});
});
