// Turn a callback-style wx API into a Promise. Newer base libraries return
// Promises themselves for some APIs, but not all (wx.request returns a
// RequestTask), so we wrap explicitly and behave the same everywhere.
// `wx` is looked up at call time so tests can swap in a fake.
function call(name, options = {}) {
  return new Promise((resolve, reject) => {
    wx[name]({ ...options, success: resolve, fail: reject })
  })
}

module.exports = { call }
