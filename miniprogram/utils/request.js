// request(path, {method, data}) → Promise of the response body.
// Adds the Bearer token, and when the server says 401 (token expired or
// revoked server-side) logs in again ONCE and retries; a second 401 is an
// error, never a loop. Non-2xx answers and network failures reject with an
// ApiError (statusCode, detail, err_code, data).
const auth = require('./auth')
const { send, isOk, toError } = require('./http')

async function request(path, { method = 'GET', data } = {}) {
  let res = await send(path, { method, data, token: await auth.getToken() })
  if (res.statusCode === 401) {
    auth.clearToken()
    res = await send(path, { method, data, token: await auth.login() })
  }
  if (!isOk(res)) throw toError(res)
  return res.data
}

module.exports = {
  request,
  get: (path) => request(path),
  post: (path, data) => request(path, { method: 'POST', data }),
}
