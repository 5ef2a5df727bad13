// request(path, {method, data, header}) → Promise of the response body.
// Adds the Bearer token, and when the server says 401 (token expired or
// revoked server-side) logs in again ONCE and retries; a second 401 is an
// error, never a loop. Non-2xx answers and network failures reject with an
// ApiError (statusCode, detail, err_code, data).
// `auth: false` is for public endpoints (the catalogue): no token, so browsing
// never waits for wx.login.
const auth = require('./auth')
const { send, isOk, toError } = require('./http')

async function request(path, { method = 'GET', data, header, auth: withToken = true } = {}) {
  let res
  if (!withToken) {
    res = await send(path, { method, data, header })
  } else {
    res = await send(path, { method, data, header, token: await auth.getToken() })
    if (res.statusCode === 401) {
      auth.clearToken()
      // Same headers on the retry: an Idempotency-Key still names the same order.
      res = await send(path, { method, data, header, token: await auth.login() })
    }
  }
  if (!isOk(res)) throw toError(res)
  return res.data
}

module.exports = {
  request,
  get: (path, options) => request(path, { ...options, method: 'GET' }),
  post: (path, data, options) => request(path, { ...options, method: 'POST', data }),
}
