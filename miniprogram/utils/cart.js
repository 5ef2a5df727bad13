// The cart lives in storage under 'cart' as [{product_id, name, price, quantity,
// requires_shipping}]. Only product_id and quantity are sent to the server;
// name and price (fen) are for display (the server prices the order itself),
// requires_shipping tells the checkout whether to ask for an address.
const STORAGE_KEY = 'cart'

function read() {
  const cart = wx.getStorageSync(STORAGE_KEY) // '' when absent
  return Array.isArray(cart) ? cart : []
}

function write(items) {
  wx.setStorageSync(STORAGE_KEY, items)
}

function clear() {
  wx.removeStorageSync(STORAGE_KEY)
}

const count = (items = read()) => items.reduce((sum, it) => sum + it.quantity, 0)

// Adds `quantity` of a product as GET /products gave it. Never more than the
// known stock (`stock` null = unlimited); returns the quantity now in the cart.
function add(product, quantity = 1) {
  const items = read()
  let line = items.find((it) => it.product_id === product.id)
  if (!line) {
    line = { product_id: product.id, quantity: 0 }
    items.push(line)
  }
  // Refresh what is shown from the latest product data.
  Object.assign(line, { name: product.name, price: product.price, requires_shipping: product.requires_shipping })
  const wanted = line.quantity + quantity
  line.quantity = product.stock === null || product.stock === undefined ? wanted : Math.min(wanted, product.stock)
  write(items.filter((it) => it.quantity > 0))
  return line.quantity
}

// An address is asked for when something in the cart ships. A line saved
// without the flag (an older cart) does not force it: the server then answers
// 400 naming `address`, and the checkout asks for one.
const needsAddress = (items) => items.some((it) => it.requires_shipping === true)

module.exports = { STORAGE_KEY, read, write, clear, count, add, needsAddress }
