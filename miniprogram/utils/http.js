// One HTTP exchange with the shop backend, without login or retry logic
// (see request.js for that). Kept separate so auth.js can log in with it
// without a circular require.
const config = require('./config')
const { call } = require('./promisify')

// An Error that keeps what the server said: `statusCode`, its `detail`, WeChat's
// `err_code` when the backend passes one on, and the whole body in `data`
// (e.g. the current `total_fee` of a 409, the `out_trade_no` of a 502).
class ApiError extends Error {
  constructor(message, { statusCode, detail, err_code, data, errMsg } = {}) {
    super(message)
    this.name = 'ApiError'
    this.statusCode = statusCode // 0 for a network failure: no answer at all
    this.detail = detail
    if (err_code !== undefined) this.err_code = err_code
    this.data = data
    if (errMsg) this.errMsg = errMsg
  }
}

// Resolves with wx.request's response ({statusCode, data, header}) whatever the
// HTTP status: wx calls `success` for any answer, `fail` only when none came
// (DNS, TLS, timeout, domain not whitelisted). `header` adds request headers
// (e.g. Idempotency-Key).
async function send(path, { method = 'GET', data, token, header: extra } = {}) {
  const header = { 'content-type': 'application/json', ...extra }
  if (token) header.Authorization = `Bearer ${token}`
  try {
    return await call('request', { url: config.baseUrl + path, method, data, header, dataType: 'json' })
  } catch (fail) {
    const errMsg = (fail && fail.errMsg) || 'request:fail'
    throw new ApiError(`Network error: ${errMsg}`, { statusCode: 0, detail: errMsg, errMsg })
  }
}

function isOk(res) {
  return res.statusCode >= 200 && res.statusCode < 300
}

// Build the error for a non-2xx answer. A proxy in front of the backend may
// answer HTML instead of JSON, so `detail` falls back to the status line.
function toError(res) {
  const data = res.data && typeof res.data === 'object' ? res.data : {}
  const detail = typeof data.detail === 'string' ? data.detail : `HTTP ${res.statusCode}`
  // The payment endpoints say `err_code`; the login endpoint says `errcode`.
  const errCode = data.err_code !== undefined ? data.err_code : data.errcode
  return new ApiError(detail, { statusCode: res.statusCode, detail, err_code: errCode, data })
}

module.exports = { ApiError, send, isOk, toError }
