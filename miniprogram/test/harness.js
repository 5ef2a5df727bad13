// A minimal Page() stand-in: loads a page module fresh and returns an instance
// whose setData merges into data, as the runtime does (shallowly).
const path = require('node:path')

function loadPage(relativePath) {
  let definition
  global.Page = (d) => { definition = d }
  const file = require.resolve(path.join('..', relativePath))
  delete require.cache[file]
  require(file)
  const page = { ...definition, data: JSON.parse(JSON.stringify(definition.data)) }
  page.setData = (patch) => { Object.assign(page.data, patch) }
  return page
}

// The token is already stored: no wx.login unless a test wants one.
const withToken = (fake, token = 'tok') => {
  fake.storage.set(require('../utils/auth').STORAGE_KEY, { token, expiresAt: Date.now() + 3600 * 1000 })
}

module.exports = { loadPage, withToken }
