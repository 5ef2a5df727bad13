// A scripted stand-in for the mini-program's `wx` global, just enough for the
// code under test. Callbacks fire asynchronously, as the real ones do.
//
//   const fake = installFakeWx()
//   fake.reply('POST /payment/order', { status: 201, body: {...} })  // a queue;
//   fake.reply('GET /orders/N1', unpaid, paid)                       // the last reply repeats
//   fake.reply('GET /orders/N1', { network: 'request:fail timeout' }) // `fail` callback
//   fake.payWith('cancel')   // next wx.requestPayment: 'ok' (default) | 'cancel' | any errMsg
//   fake.addressWith({userName, …}, 'cancel')  // next wx.chooseAddress results: an address | 'cancel' | any errMsg
//   fake.modalWith(false)    // next wx.showModal: confirm true (default) | false
//   fake.calls.request       // [{key, url, path, method, data, header}]
//   fake.calls.ui            // [[name, options]] for toasts, loading, navigation, modals

const later = (fn) => setImmediate(fn)
const clone = (v) => (v === undefined ? v : JSON.parse(JSON.stringify(v)))

function createFakeWx() {
  const routes = new Map() // 'METHOD /path' → replies
  const payments = [] // outcomes for wx.requestPayment, in order
  const addresses = [] // outcomes for wx.chooseAddress, in order
  const modals = [] // confirm answers for wx.showModal, in order
  const storage = new Map()
  const calls = { login: 0, request: [], requestPayment: [], chooseAddress: 0, ui: [] }
  let codes = 0

  const ui = (name) => (options) => { calls.ui.push([name, options]) }

  const wx = {
    login({ success }) {
      calls.login += 1
      const code = `code-${++codes}`
      later(() => success({ code, errMsg: 'login:ok' }))
    },

    request(options) {
      const method = options.method || 'GET'
      const path = options.url.replace(/^https?:\/\/[^/]+/, '')
      const key = `${method} ${path}`
      calls.request.push({ key, url: options.url, path, method, data: clone(options.data), header: { ...options.header } })
      const queue = routes.get(key)
      // An unscripted call answers 599 so a test sees it instead of hanging.
      const reply = !queue ? { status: 599, body: { detail: `unscripted request: ${key}` } }
        : queue.length > 1 ? queue.shift() : queue[0]
      later(() => {
        if (reply.network) options.fail({ errMsg: reply.network })
        else options.success({ statusCode: reply.status, data: clone(reply.body), header: {} })
      })
    },

    requestPayment(options) {
      calls.requestPayment.push(options)
      const outcome = payments.length ? payments.shift() : 'ok'
      later(() => {
        if (outcome === 'ok') options.success({ errMsg: 'requestPayment:ok' })
        else options.fail({ errMsg: outcome === 'cancel' ? 'requestPayment:fail cancel' : outcome })
      })
    },

    chooseAddress(options) {
      calls.chooseAddress += 1
      // Unscripted: a cancel, so a test never gets an address it did not set up.
      const outcome = addresses.length ? addresses.shift() : 'cancel'
      later(() => {
        if (typeof outcome === 'object') options.success({ ...outcome, errMsg: 'chooseAddress:ok' })
        else options.fail({ errMsg: outcome === 'cancel' ? 'chooseAddress:fail cancel' : outcome })
      })
    },

    showModal(options) {
      calls.ui.push(['showModal', { title: options.title, content: options.content }])
      const confirm = modals.length ? modals.shift() : true
      later(() => options.success({ confirm, cancel: !confirm, errMsg: 'showModal:ok' }))
    },

    getStorageSync: (key) => (storage.has(key) ? clone(storage.get(key)) : ''), // '' like wx
    setStorageSync: (key, value) => { storage.set(key, clone(value)) },
    removeStorageSync: (key) => { storage.delete(key) },

    showToast: ui('showToast'),
    showLoading: ui('showLoading'),
    hideLoading: ui('hideLoading'),
    navigateTo: ui('navigateTo'),
    stopPullDownRefresh: ui('stopPullDownRefresh'),
  }

  return {
    wx,
    calls,
    storage,
    reply(key, ...replies) { routes.set(key, replies); return this },
    payWith(...outcomes) { payments.push(...outcomes); return this },
    addressWith(...outcomes) { addresses.push(...outcomes); return this },
    modalWith(...answers) { modals.push(...answers); return this },
    requests: (key) => calls.request.filter((c) => c.key === key),
  }
}

// Put a fresh fake in the global scope, as the mini-program runtime does.
function installFakeWx() {
  const fake = createFakeWx()
  global.wx = fake.wx
  return fake
}

module.exports = { createFakeWx, installFakeWx }
