// Product detail: GET /products/<id>, a quantity, "Add to cart" / "Buy now".
// The cart is utils/cart.js (storage), which the checkout page reads.
const api = require('../../utils/api')
const cart = require('../../utils/cart')
const { toCard, forCart } = require('../products/list')

Page({
  data: {
    product: null,
    quantity: 1,
    message: '',
    cartCount: 0,
  },

  async onLoad({ id } = {}) {
    this.setData({ cartCount: cart.count() })
    try {
      this.setData({ product: toCard(await api.getProduct(id)) })
    } catch (err) {
      // 404: no longer on sale.
      this.setData({ message: err.statusCode === 404 ? 'This product is no longer on sale.' : err.detail || err.message })
    }
  },

  // The most that can be added now: the stock, when known.
  maxQuantity() {
    const { stock } = this.data.product
    return stock === null || stock === undefined ? Infinity : stock
  },

  more() {
    if (this.data.quantity < this.maxQuantity()) this.setData({ quantity: this.data.quantity + 1 })
  },

  less() {
    if (this.data.quantity > 1) this.setData({ quantity: this.data.quantity - 1 })
  },

  add() {
    const { product, quantity } = this.data
    if (!product || product.soldOut) return false
    cart.add(forCart(product), quantity)
    this.setData({ cartCount: cart.count() })
    return true
  },

  addToCart() {
    if (this.add()) wx.showToast({ title: 'Added to cart', icon: 'success' })
  },

  buyNow() {
    if (this.add()) wx.navigateTo({ url: '/pages/checkout/checkout' })
  },
})
